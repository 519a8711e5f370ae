"""Load generators: sequential latency, closed-loop throughput, open-loop at a fixed rate."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench.common import Latency, now

Op = Callable[[], Awaitable[object]]


async def sequential(op: Op, n: int, warmup: int = 20) -> Latency:
    """Latency of n calls made one at a time."""
    for _ in range(warmup):
        await op()
    samples = []
    for _ in range(n):
        t0 = now()
        await op()
        samples.append(now() - t0)
    return Latency.of(samples)


@contextmanager
def client_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection in the load generator while it measures.

    A full collection of the benchmark process's heap stops its event loop for tens of
    milliseconds; every call in flight would then look that much slower, whatever the server did.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


@dataclass(frozen=True)
class Throughput:
    """Completed operations per second and their latency."""

    rate: float
    errors: int
    latency: Latency

    def __str__(self) -> str:
        return f"{self.rate:,.0f}/s ({self.errors} errors), {self.latency}"


async def closed_loop(op: Op, concurrency: int, duration_s: float) -> Throughput:
    """As many calls as ``concurrency`` callers can make back to back for ``duration_s``."""
    samples: list[float] = []
    errors = 0
    end = now() + duration_s

    async def caller() -> None:
        nonlocal errors
        while now() < end:
            t0 = now()
            try:
                await op()
            except Exception:
                errors += 1
                continue
            samples.append(now() - t0)

    start = now()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return Throughput(len(samples) / (now() - start), errors, Latency.of(samples))


async def open_loop(op: Op, rate: float, duration_s: float, max_in_flight: int = 2000) -> Throughput:
    """Calls started at a fixed rate (not waiting for earlier ones) for ``duration_s``.

    Latency is measured from each call's scheduled start, so a client that falls behind shows it
    (no coordinated omission).
    """
    samples: list[float] = []
    errors = 0
    tasks: set[asyncio.Task[None]] = set()
    interval = 1.0 / rate
    total = int(rate * duration_s)

    async def one(scheduled: float) -> None:
        nonlocal errors
        try:
            await op()
        except Exception:
            errors += 1
            return
        samples.append(now() - scheduled)

    with client_gc_paused():
        start = now()
        for i in range(total):
            scheduled = start + i * interval
            delay = scheduled - now()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(tasks) >= max_in_flight:
                errors += 1  # the system is saturated; counting the call as failed keeps the run bounded
                continue
            task = asyncio.create_task(one(scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(set(tasks), timeout=30)
    elapsed = now() - start
    return Throughput(len(samples) / elapsed, errors, Latency.of(samples))
