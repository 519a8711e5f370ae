"""A local OTLP/gRPC trace sink: accepts every export and counts the spans (a stand-in collector).

``python -m bench.tracing_sink [FILE]`` prints ``READY <port>``; on stdin EOF prints the span count.
With FILE, every span is also appended to it as one JSON line (``span_record``), for
bench/publish_spans.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO, Any

import grpc.aio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2


def span_record(service: str, span: trace_pb2.Span) -> dict[str, Any]:
    """The fields of a span that a timeline needs, JSON-ready (ids in hex, times in ns)."""
    return {
        "service": service,
        "name": span.name,
        "trace": span.trace_id.hex(),
        "id": span.span_id.hex(),
        "parent": span.parent_span_id.hex(),
        "start": span.start_time_unix_nano,
        "end": span.end_time_unix_nano,
    }


class _Sink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, record: IO[str] | None) -> None:
        self.spans = 0
        self._record = record

    async def Export(self, request, context):  # type: ignore[no-untyped-def]
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"), ""
            )
            for scope_spans in resource_spans.scope_spans:
                self.spans += len(scope_spans.spans)
                if self._record is not None:
                    for span in scope_spans.spans:
                        self._record.write(json.dumps(span_record(service, span)) + "\n")
        if self._record is not None:
            self._record.flush()
        return trace_service_pb2.ExportTraceServiceResponse()


async def _serve(record: IO[str] | None) -> None:
    sink = _Sink(record)
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"READY {port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(1)
    print(sink.spans, flush=True)


def sampled_and_exported_to(endpoint: str) -> dict[str, str]:
    """The services' environment for sampling every span and exporting it over OTLP/gRPC to ``endpoint``."""
    return {
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
    }


@contextlib.asynccontextmanager
async def otlp_sink(record_path: str | None = None) -> AsyncIterator[tuple[str, Callable[[], Awaitable[int]]]]:
    """Run the sink in its own process; yields (endpoint, async count of spans received).

    With ``record_path``, the sink appends every span to that file (JSON lines, ``span_record``).
    """
    extra = [record_path] if record_path else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.tracing_sink",
        *extra,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
    if line[:1] != ["READY"]:
        await proc.wait()
        raise RuntimeError(f"the trace sink exited before serving (exit {proc.returncode}); see its stderr above")
    counted: list[int] = []

    async def count() -> int:
        if not counted:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.close()
            counted.append(int((await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip() or 0))
        return counted[0]

    try:
        yield f"http://127.0.0.1:{line[1]}", count
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def _main() -> None:
    if len(sys.argv) > 1:
        with open(sys.argv[1], "a") as record:
            asyncio.run(_serve(record))
    else:
        asyncio.run(_serve(None))


if __name__ == "__main__":
    _main()
