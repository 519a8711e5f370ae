"""Load-generating worker processes, so the client side can use more than one core.

``python -m bench.worker unary ADDR KIND DURATION CONCURRENCY [NUMBER]``: closed-loop unary calls
(KIND echo or routecall); prints one JSON line {count, errors, elapsed, cpu_s (the worker's own CPU
time), latencies_ms (sampled)}.

``python -m bench.worker watch ADDR PARENT COUNT``: opens COUNT WatchPublishJobs streams on PARENT
with the token in BENCH_TOKEN,
prints READY once they are open, and on stdin EOF prints one JSON line with, per received update,
the delay from the job's update_time to its arrival, per stream the number of updates, and the
worker's CPU time after READY. bench/cpp/watch.cc speaks the same protocol.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from typing import Any

import grpc
import grpc.aio
import uvloop

from bench.common import bearer, token
from bench.echo_server import METHOD
from speako.activation.v1 import activation_service_pb2 as act
from speako.activation.v1 import resources_pb2
from speako.notifier.v1 import notifier_service_pb2 as ntf
from speako.notifier.v1 import notifier_service_pb2_grpc as ntf_grpc

ROUTE_CALL = "/speako.activation.v1.ActivationService/RouteCall"


async def unary(addr: str, kind: str, duration: float, concurrency: int, number: str = "") -> dict[str, object]:
    """Closed-loop calls for ``duration`` seconds."""
    channels = [grpc.aio.insecure_channel(addr) for _ in range(2)]
    md = bearer(token(["service"], "*", subject="bench-gateway"))
    if kind == "echo":
        calls = [c.unary_unary(METHOD) for c in channels]
        payload = b"+14155550100" * 4

        def op(i: int) -> Any:
            return calls[i % 2](payload, timeout=10)

    else:
        # Raw bytes both ways, as for echo: the client's protobuf work is not what is measured. The
        # warm-up below checks that the answers are real Calls.
        calls = [c.unary_unary(ROUTE_CALL) for c in channels]
        request = act.RouteCallRequest(called_number=number, caller_number="+14155550199").SerializeToString()

        def op(i: int) -> Any:
            return calls[i % 2](request, metadata=md, timeout=10)

    for i in range(50):
        answer = await op(i)
        if kind != "echo" and not resources_pb2.Call.FromString(answer).version:  # type: ignore[arg-type]
            raise RuntimeError(f"RouteCall answered without a version: {answer!r}")
    count = errors = 0
    samples: list[float] = []
    end = time.perf_counter() + duration

    async def caller(i: int) -> None:
        nonlocal count, errors
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            try:
                await op(i)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            count += 1
            if random.random() < 0.2:
                samples.append((time.perf_counter() - t0) * 1000)

    start, cpu_start = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    await asyncio.gather(*(c.close() for c in channels))
    return {"count": count, "errors": errors, "elapsed": elapsed, "cpu_s": cpu, "latencies_ms": samples}


async def watch(addr: str, parent: str, count: int) -> dict[str, object]:
    """COUNT concurrent WatchPublishJobs streams; delays of every update received."""
    md = bearer(os.environ["BENCH_TOKEN"])
    channels = [grpc.aio.insecure_channel(addr) for _ in range(max(1, count // 100))]
    stubs = [ntf_grpc.NotifierServiceStub(c) for c in channels]
    delays: list[float] = []
    per_stream = [0] * count
    errors: list[str] = []
    calls = []

    async def one(i: int) -> None:
        call = stubs[i % len(stubs)].WatchPublishJobs(ntf.WatchPublishJobsRequest(parent=parent), metadata=md)
        calls.append(call)
        try:
            async for update in call:
                if update.heartbeat:
                    continue
                arrived = time.time()
                changed = update.job.update_time.ToMicroseconds() / 1e6
                delays.append(arrived - changed)
                per_stream[i] += 1
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                errors.append(f"{exc.code().name}: {exc.details()}")

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await asyncio.sleep(0)
    for channel in channels:
        await channel.channel_ready()
    await asyncio.sleep(1.0)
    cpu_start = time.process_time()  # from here on: the updates, not the opening of the streams
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for call in calls:
        call.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(c.close() for c in channels))
    return {
        "delays": delays,
        "per_stream": per_stream,
        "errors": errors[:20],
        "error_count": len(errors),
        "cpu_s": time.process_time() - cpu_start,
    }


def main() -> None:
    """Entry point (see the module docstring)."""
    mode = sys.argv[1]
    if mode == "unary":
        addr, kind, duration, concurrency = sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
        number = sys.argv[6] if len(sys.argv) > 6 else ""
        result = uvloop.run(unary(addr, kind, duration, concurrency, number))
    else:
        result = uvloop.run(watch(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
