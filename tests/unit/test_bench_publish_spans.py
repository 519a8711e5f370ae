"""bench/publish_spans.py: the median timeline of publishes' traces, and the sink that records them."""

from __future__ import annotations

import asyncio
import json

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from bench.publish_spans import ROOT, publish_traces, timeline, tree
from bench.tracing_sink import otlp_sink

MS = 1_000_000  # ns


def span(trace: str, span_id: str, parent: str, service: str, name: str, start_ms: float, end_ms: float) -> dict:
    return {
        "service": service,
        "name": name,
        "trace": trace,
        "id": span_id,
        "parent": parent,
        "start": int(1_000 * MS + start_ms * MS),
        "end": int(1_000 * MS + end_ms * MS),
    }


def a_publish(trace: str, offset_ms: float, getversion_ms: float) -> list[dict]:
    """PublishDraft, the publisher's GetVersion call and config's server span, two notifier events."""
    o = offset_ms
    return [
        span(trace, "c1", "", "speako-config", ROOT, o, o + 3),
        span(trace, "p1", "c1", "speako-publisher", "/x.Config/GetVersion", o + 10, o + 10 + getversion_ms),
        span(trace, "c2", "p1", "speako-config", "/x.Config/GetVersion", o + 12, o + 13),
        span(trace, "n1", "c1", "speako-notifier", "notifier.events process", o + 5, o + 7),
        span(trace, "n2", "p1", "speako-notifier", "notifier.events process", o + 20, o + 21),
    ]


def test_the_timeline_gives_each_span_its_median_start_and_duration_from_publishdraft():
    spans = a_publish("t1", 0, 4) + a_publish("t2", 100, 9) + a_publish("t3", 200, 5)
    spans += [span("other", "u1", "", "speako-config", "/x.Config/UpdateDraft", 50, 52)]  # not a publish
    traces = publish_traces(spans)
    assert [t[0]["trace"] for t in traces] == ["t1", "t2", "t3"]
    steps = {(s.service, s.name, s.occurrence): s for s in timeline(traces)}
    assert len(steps) == 5
    call = steps[("speako-publisher", "/x.Config/GetVersion", 1)]
    assert (call.start_ms, call.duration_ms, call.count) == (10, 5, 3)  # the median of 4, 9 and 5 ms
    # The second span of one service and name is told apart from the first.
    assert steps[("speako-notifier", "notifier.events process", 1)].start_ms == 5
    assert steps[("speako-notifier", "notifier.events process", 2)].start_ms == 20
    assert [s.start_ms for s in timeline(traces)] == sorted(s.start_ms for s in timeline(traces))


def test_the_tree_indents_each_span_under_its_parent():
    lines = tree(publish_traces(a_publish("t1", 0, 4))[0])
    prefix = len(f"{0:7.2f} {0:7.2f} {0:6.2f}  ")  # start, end, duration

    def depth(line: str) -> int:
        rest = line[prefix:]
        return (len(rest) - len(rest.lstrip())) // 2

    assert [(depth(line), line[prefix:].strip()) for line in lines] == [
        (0, f"speako-config {ROOT}"),
        (1, "speako-notifier notifier.events process"),
        (1, "speako-publisher /x.Config/GetVersion"),
        (2, "speako-config /x.Config/GetVersion"),
        (2, "speako-notifier notifier.events process"),
    ]
    assert lines[1].split()[:3] == ["5.00", "7.00", "2.00"]  # the notifier's event, 5 ms after PublishDraft


async def test_the_sink_records_every_span_it_receives(tmp_path):
    record = tmp_path / "spans.jsonl"
    async with otlp_sink(str(record)) as (endpoint, received):
        provider = TracerProvider(resource=Resource.create({"service.name": "speako-test"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("outer"), tracer.start_as_current_span("inner"):
            pass
        await asyncio.to_thread(provider.shutdown)
        assert await received() == 2
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert {(r["service"], r["name"]) for r in rows} == {("speako-test", "outer"), ("speako-test", "inner")}
    inner = next(r for r in rows if r["name"] == "inner")
    outer = next(r for r in rows if r["name"] == "outer")
    assert inner["parent"] == outer["id"] and inner["trace"] == outer["trace"]
    assert outer["start"] <= inner["start"] <= inner["end"] <= outer["end"]
