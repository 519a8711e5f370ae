"""ServerTracing: every call runs in a server span continuing the caller's trace; spans that may be
recorded still come from OpenTelemetry's interceptor (a real in-process gRPC server, no database)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import grpc.aio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from chassis import telemetry
from chassis.interceptors import ServerTracing, _sampled_parent

METHOD = "/test.Tracing/Current"
PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def _current(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    span = trace.get_current_span()
    ctx = span.get_span_context()
    return f"{ctx.trace_id:032x} {ctx.is_valid} {span.is_recording()}".encode()


async def _stream(request: bytes, context: grpc.aio.ServicerContext):
    for _ in range(2):
        yield await _current(request, context)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@asynccontextmanager
async def _serve(provider: TracerProvider) -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[ServerTracing(provider)])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Tracing",
                {
                    "Current": grpc.unary_unary_rpc_method_handler(_current),
                    "Stream": grpc.unary_stream_rpc_method_handler(_stream),
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop(None)


def _provider(exporter: InMemorySpanExporter, sampler=None) -> TracerProvider:
    provider = TracerProvider(sampler=sampler or telemetry._NO_ROOTS)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _traceparent(sampled: bool) -> list[tuple[str, str]]:
    return [("traceparent", f"00-{PARENT_TRACE}-00f067aa0ba902b7-{'01' if sampled else '00'}")]


async def test_calls_without_a_parent_get_a_fresh_unrecorded_trace(exporter):
    async with _serve(_provider(exporter)) as channel:
        call = channel.unary_unary(METHOD)
        first, second = (await call(b""), await call(b""))
        (trace_a, valid_a, recording_a), (trace_b, _, _) = first.decode().split(), second.decode().split()
        assert (valid_a, recording_a) == ("True", "False")
        assert trace_a != trace_b and trace_a != "0" * 32
        assert exporter.get_finished_spans() == ()


async def test_an_unsampled_parent_is_continued_without_recording(exporter):
    async with _serve(_provider(exporter)) as channel:
        answer = await channel.unary_unary(METHOD)(b"", metadata=_traceparent(sampled=False))
        assert answer.decode().split() == [PARENT_TRACE, "True", "False"]
        streamed = [m async for m in channel.unary_stream("/test.Tracing/Stream")(b"", metadata=_traceparent(False))]
        assert [m.decode().split()[0] for m in streamed] == [PARENT_TRACE, PARENT_TRACE]
        assert exporter.get_finished_spans() == ()


async def test_a_sampled_parent_gets_a_recorded_server_span(exporter):
    async with _serve(_provider(exporter)) as channel:
        answer = await channel.unary_unary(METHOD)(b"", metadata=_traceparent(sampled=True))
        assert answer.decode().split() == [PARENT_TRACE, "True", "True"]
        [span] = exporter.get_finished_spans()
        assert (span.name, f"{span.context.trace_id:032x}", span.kind) == (METHOD, PARENT_TRACE, trace.SpanKind.SERVER)


async def test_when_roots_are_sampled_every_call_is_recorded(exporter):
    async with _serve(_provider(exporter, ALWAYS_ON)) as channel:
        await channel.unary_unary(METHOD)(b"")
        await channel.unary_unary(METHOD)(b"")
        assert [s.name for s in exporter.get_finished_spans()] == [METHOD, METHOD]


class _CountingIds(RandomIdGenerator):
    """Ids 1, 2, 3... so a test can tell they came from the provider's generator."""

    def __init__(self) -> None:
        self.next = 0

    def generate_trace_id(self) -> int:
        self.next += 1
        return self.next

    def is_trace_id_random(self) -> bool:
        return False


async def test_a_fresh_trace_takes_its_ids_from_the_providers_generator(exporter):
    provider = _provider(exporter)
    provider.id_generator = _CountingIds()
    async with _serve(provider) as channel:
        call = channel.unary_unary(METHOD)
        answers = [(await call(b"")).decode().split() for _ in range(2)]
    assert answers == [[f"{1:032x}", "True", "False"], [f"{2:032x}", "True", "False"]]


async def test_with_the_sdk_disabled_calls_carry_no_trace(exporter, monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    async with _serve(_provider(exporter)) as channel:
        answer = await channel.unary_unary(METHOD)(b"")
    assert answer.decode().split() == ["0" * 32, "False", "False"]


@pytest.mark.parametrize(
    ("metadata", "sampled"),
    [
        ((), False),
        ((("authorization", "Bearer x"), ("baggage", "k=v")), False),
        (tuple(_traceparent(sampled=False)), False),
        (tuple(_traceparent(sampled=True)), True),
        ((("traceparent", "00-garbage-zz"),), True),  # OpenTelemetry judges what it cannot parse
        ((("x-b3-sampled", "1"),), True),  # another propagator's header
    ],
)
def test_only_calls_that_may_be_sampled_are_left_to_opentelemetry(metadata, sampled):
    fields = frozenset({"traceparent", "tracestate", "baggage", "x-b3-sampled"})
    assert _sampled_parent(metadata, fields) is sampled
