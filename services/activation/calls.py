"""Group commit of routed calls: calls arriving together are pinned with one INSERT.

RouteCall answers only after its call is committed (the pin is durable), but a commit per call
would cap throughput at the disk's flush rate. Writers take everything queued, write it in one
round trip, and resolve every waiter; while one batch commits, the next one gathers.

A batch has a fixed cost besides its calls' share, about 0.5 ms of this process's CPU on a 2-core
machine, and PostgreSQL commits so fast that at 1,000 calls/s batches held 1.1 calls on average.
So while the event loop's thread is saturated, a batch first lingers a few milliseconds to gather
company (``BusyLoopLinger``); with CPU to spare, a call is written at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from services.activation.domain.status import CallRecord

log = logging.getLogger("speako.activation.calls")

InsertCalls = Callable[[Sequence[CallRecord]], Awaitable[None]]
# How long the next batch waits for more calls before it is written (seconds; 0: at once).
Linger = Callable[[], float]


def no_linger() -> float:
    """Write every batch as soon as a writer is free."""
    return 0.0


class BusyLoopLinger:
    """Linger only while the event loop's thread is saturated, when waiting costs little latency.

    Called by the writer, on the loop's thread, each time a batch is about to be written: once
    ``window_s`` or more has passed since the previous reading, it takes the CPU share of that
    thread since then (``time.thread_time``; gRPC's own threads are not counted, and under
    ``speako serve all`` the loop is every service's). Lingering starts at ``busy_from`` and stops
    under ``idle_below``; the gap keeps the decision from flapping, since lingering itself lowers
    the CPU used per call. A saturated loop already queues each call for tens of milliseconds, so
    ``linger_s`` adds little to a call's latency there, while a loop with CPU to spare never waits.
    """

    def __init__(
        self,
        linger_s: float = 0.003,
        *,
        busy_from: float = 0.9,
        idle_below: float = 0.6,
        window_s: float = 0.05,
        wall: Callable[[], float] = time.perf_counter,
        cpu: Callable[[], float] = time.thread_time,
    ) -> None:
        if not (linger_s >= 0 and window_s > 0 and 0 <= idle_below <= busy_from):
            raise ValueError("need linger_s >= 0, window_s > 0 and 0 <= idle_below <= busy_from")
        self._linger_s = linger_s
        self._busy_from = busy_from
        self._idle_below = idle_below
        self._window_s = window_s
        self._wall = wall
        self._cpu = cpu
        # The first reading is taken on the first call, on the writer's thread, not at start-up.
        self._since: float | None = None
        self._cpu_since = 0.0
        self._busy = False

    def __call__(self) -> float:
        now = self._wall()
        if self._since is None:
            self._since, self._cpu_since = now, self._cpu()
            return 0.0
        elapsed = now - self._since
        if elapsed >= self._window_s:
            used = self._cpu()
            share = (used - self._cpu_since) / elapsed
            self._since, self._cpu_since = now, used
            if share >= self._busy_from:
                self._busy = True
            elif share < self._idle_below:
                self._busy = False
        return self._linger_s if self._busy else 0.0


class CallsNotRecorded(Exception):
    """The batch holding a call could not be committed (or the recorder is stopping)."""


class CallRecorder:
    """Batches call inserts; ``record`` returns once the call's batch has committed."""

    def __init__(
        self,
        inserts: Sequence[InsertCalls],
        *,
        max_batch: int = 2000,
        on_batch: Callable[[int], None] | None = None,
        linger: Linger = no_linger,
    ) -> None:
        """One writer per insert function: while one batch commits, another may be written."""
        self._inserts = list(inserts)
        self._linger = linger
        self._on_batch = on_batch
        self._max_batch = max_batch
        self._pending: list[tuple[CallRecord, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._closed = False

    async def record(self, call: CallRecord) -> None:
        """Pin one call durably (raises CallsNotRecorded if its batch fails)."""
        if self._closed:
            raise CallsNotRecorded("the call recorder is shutting down")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((call, future))
        self._wake.set()
        await future

    async def run(self) -> None:
        """Run the writers until cancelled; on the way out, flush what is queued."""
        self._closed = False  # open again if the supervisor restarts it
        writers = [asyncio.create_task(self._writer(insert)) for insert in self._inserts]
        try:
            await asyncio.gather(*writers)
        finally:
            self._closed = True
            for task in writers:
                task.cancel()
            await asyncio.gather(*writers, return_exceptions=True)
            # Calls already accepted get their answer: write them before going.
            while self._pending:
                await self._write_next(self._inserts[0])

    async def _writer(self, insert: InsertCalls) -> None:
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            # A full batch has all the company it can take.
            delay = self._linger() if len(self._pending) < self._max_batch else 0.0
            if delay > 0:
                await asyncio.sleep(delay)
            await self._write_next(insert)

    async def _write_next(self, insert: InsertCalls) -> None:
        batch = self._pending[: self._max_batch]
        del self._pending[: self._max_batch]
        # A caller that gave up before its batch was written is not pinned.
        batch = [(c, f) for c, f in batch if not f.done()]
        if not batch:
            return
        if self._on_batch is not None:
            self._on_batch(len(batch))
        try:
            await insert([c for c, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                if not future.done():
                    future.set_exception(CallsNotRecorded("the call recorder stopped mid-write"))
            raise
        except Exception as exc:
            log.warning("could not pin %d calls: %s", len(batch), exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(CallsNotRecorded(f"the call could not be recorded: {exc}"))
            return
        for _, future in batch:
            if not future.done():
                future.set_result(None)
