"""Where a publish's time goes, span by span: the median timeline of sequential publishes.

``python -m bench.publish_spans -n 60`` starts the four services as processes (as
bench/publish_trace.py does) with every span sampled and exported over OTLP to a local sink that
records them (bench/tracing_sink.py), publishes ``-n`` times one at a time, and prints for each span
of a publish's trace its median start (from the start of PublishDraft's server span) and median
duration, then one publish's whole tree.

Reading it: a CLIENT span (``/pkg.Service/Method`` on the caller) much longer than the SERVER span
of the same name on the callee is time spent between the two processes (queued behind other work
for a core, in gRPC's threads); a gap between a broker ``publish`` and the consumer's ``process`` is
the broker hop. Sampling every span costs CPU of its own (docs/PERFORMANCE.md, Tracing overhead),
so the absolute figures are a little above those of bench/publish_trace.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import percentile, scratch
from bench.platform_bench import WARMUP_PUBLISHES, publish_latency, running
from bench.tracing_sink import otlp_sink, sampled_and_exported_to

Span = dict[str, Any]
# The span that starts every publish's trace: config's server span of PublishDraft.
ROOT = "/speako.config.v1.ConfigService/PublishDraft"


@dataclass(frozen=True)
class Step:
    """One span of a publish's trace, medians over the publishes (ms from the root's start)."""

    service: str
    name: str
    occurrence: int  # 1 for the first span of this service and name in a trace, 2 for the next...
    start_ms: float
    duration_ms: float
    count: int

    def __str__(self) -> str:
        label = f"{self.name} #{self.occurrence}" if self.occurrence > 1 else self.name
        return f"{self.start_ms:7.2f} {self.duration_ms:7.2f}  {self.service:<18} {label} (n={self.count})"


def publish_traces(spans: list[Span]) -> list[list[Span]]:
    """The traces that hold a PublishDraft server span, each sorted by start, in publish order."""
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        by_trace[span["trace"]].append(span)
    traces = [sorted(t, key=lambda s: s["start"]) for t in by_trace.values()]
    traces = [t for t in traces if any(s["name"] == ROOT for s in t)]
    return sorted(traces, key=lambda t: _root(t)["start"])


def _root(trace: list[Span]) -> Span:
    return next(s for s in trace if s["name"] == ROOT)


def timeline(traces: list[list[Span]]) -> list[Step]:
    """Median start and duration of each (service, span name, occurrence), in order of start."""
    starts: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    durations: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for trace in traces:
        t0 = _root(trace)["start"]
        seen: dict[tuple[str, str], int] = defaultdict(int)
        for span in trace:
            seen[(span["service"], span["name"])] += 1
            key = (span["service"], span["name"], seen[(span["service"], span["name"])])
            starts[key].append((span["start"] - t0) / 1e6)
            durations[key].append((span["end"] - span["start"]) / 1e6)
    steps = [
        Step(*key, percentile(starts[key], 50), percentile(durations[key], 50), len(starts[key])) for key in starts
    ]
    return sorted(steps, key=lambda s: s.start_ms)


def tree(trace: list[Span]) -> list[str]:
    """One trace as indented lines: start, end and duration (ms from the first span), service, name."""
    t0 = trace[0]["start"]
    by_id = {s["id"]: s for s in trace}

    def depth(span: Span) -> int:
        d = 0
        while span["parent"] in by_id and d < len(trace):
            span, d = by_id[span["parent"]], d + 1
        return d

    return [
        f"{(s['start'] - t0) / 1e6:7.2f} {(s['end'] - t0) / 1e6:7.2f} {(s['end'] - s['start']) / 1e6:6.2f}  "
        f"{'  ' * depth(s)}{s['service']} {s['name']}"
        for s in trace
    ]


def load(path: Path) -> list[Span]:
    """The spans the sink recorded."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def main(n: int) -> None:
    """Publish ``n`` times one at a time with every span recorded; print the median timeline."""
    with tempfile.TemporaryDirectory(prefix="speako-spans-") as tmp:
        record = Path(tmp, "spans.jsonl")
        async with otlp_sink(str(record)) as (endpoint, spans_received):
            async with (
                scratch("spans") as s,
                running(s, "spans", **sampled_and_exported_to(endpoint)) as (_, client),
            ):
                await asyncio.sleep(1.0)
                lat, _, failed = await publish_latency(client, n, agent_id="spans")
            # Stopping the services flushed their span processors; the sink has written every span.
            received = await spans_received()
        # publish_latency's untimed warm-up publishes come first: their traces are left out too.
        traces = publish_traces(load(record))[WARMUP_PUBLISHES:]
    print(f"publish-to-live with every span sampled: {lat}; not published {failed}; spans received {received}")
    print(f"median start and duration (ms from PublishDraft's server span) over {len(traces)} publishes:")
    print("  start    dur.  service            span")
    for step in timeline(traces):
        print(f"{step}")
    if traces:
        print("one publish (the median one by its trace's length):")
        example = sorted(traces, key=lambda t: max(s["end"] for s in t) - t[0]["start"])[len(traces) // 2]
        print("  start     end   dur.")
        for line in tree(example):
            print(f"{line}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.publish_spans", description=main.__doc__)
    parser.add_argument("-n", type=int, default=60, help="sequential publishes measured (after 10 of warm-up)")
    args = parser.parse_args()
    asyncio.run(main(args.n))
