"""A local OTLP/gRPC trace sink: accepts every export and counts the spans (a stand-in collector).

``python -m bench.tracing_sink`` prints ``READY <port>``; on stdin EOF prints the span count.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc.aio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class _Sink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0

    async def Export(self, request, context):  # type: ignore[no-untyped-def]
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans += len(scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


async def _serve() -> None:
    sink = _Sink()
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"READY {port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(1)
    print(sink.spans, flush=True)


@contextlib.asynccontextmanager
async def otlp_sink() -> AsyncIterator[tuple[str, Callable[[], Awaitable[int]]]]:
    """Run the sink in its own process; yields (endpoint, async count of spans received)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.tracing_sink", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdin is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
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


if __name__ == "__main__":
    asyncio.run(_serve())
