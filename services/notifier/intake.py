"""Batched intake: one writer task per process applies job events many to a transaction.

Deliveries are handled as concurrent tasks; each hands its decoded change to ``submit`` and waits
for the outcome before it acks, so a message is acked only after its effect is committed. The
writer takes every change waiting (up to ``max_batch``) and applies them in delivery order in one
transaction (``NotifierStore.apply_job_events``); while it commits, the next batch gathers, so a
quiet system writes batches of one without waiting and a busy one shares each transaction, each
fsync and the feed-position lock between many events.

Order: changes leave the queue in the order they were submitted and one batch is written at a
time, so a job's later event never overtakes an earlier one within a process. Across replicas the
store decides (row locks on the jobs, compare-and-set on sequence) and the feed-position lock,
taken once per batch and held until its commit, makes positions visible in order.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Sequence
from typing import Protocol

from services.notifier.store import ApplyOutcome, FeedRow, JobChange, NotifierStore

log = logging.getLogger("speako.notifier.intake")

_Item = tuple[JobChange | None, "asyncio.Future[ApplyOutcome | None]"]


class CommitListener(Protocol):
    """Told of each intake commit: that it starts, then the feed rows it wrote once it is over."""

    def committing(self) -> None: ...

    def committed(self, rows: Sequence[FeedRow]) -> None: ...  # [] when it wrote none or failed


class BatchWriter:
    """Applies submitted job changes in submission order, as many per transaction as are waiting."""

    def __init__(
        self,
        store: NotifierStore,
        *,
        transient: tuple[type[BaseException], ...],
        max_batch: int = 256,
        retry_for_s: float = 30.0,
        listener: CommitListener | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._store = store
        self._transient = transient
        self._max_batch = max_batch
        self._retry_for_s = retry_for_s
        self._listener = listener
        self._pending: collections.deque[_Item] = collections.deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.events = 0
        self.largest = 0

    def start(self) -> None:
        """Start the writer task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="notifier-intake-writer")

    async def submit(self, change: JobChange | None) -> ApplyOutcome | None:
        """Queue a change and wait until it is committed (or failed); its outcome.

        ``None`` (a delivery with nothing to write) just keeps its place in line and returns None
        with the batch it lands in, so the deliveries around it can be acked with one frame.
        """
        if self._task is None or self._task.done():
            raise RuntimeError("the intake writer is not running")
        future: asyncio.Future[ApplyOutcome | None] = asyncio.get_running_loop().create_future()
        self._pending.append((change, future))
        self._idle.clear()
        self._wake.set()
        return await future

    async def close(self, timeout_s: float = 10.0) -> None:
        """Let the changes already submitted finish (bounded), then stop the writer."""
        if self.batches:
            log.info(
                "intake: %d job events in %d transactions (%.1f per transaction, largest %d)",
                self.events,
                self.batches,
                self.events / self.batches,
                self.largest,
            )
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            log.warning("intake writer still busy after %gs; stopping it (the broker redelivers)", timeout_s)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        # Waiters of anything left are nacked by their delivery handlers; the broker redelivers.
        while self._pending:
            _, future = self._pending.popleft()
            if not future.done():
                future.set_exception(ConnectionError("the notifier is shutting down"))
        self._idle.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                n = min(len(self._pending), self._max_batch)
                batch = [self._pending.popleft() for _ in range(n)]
                try:
                    await self._write(batch)
                except Exception as exc:
                    # The one writer must outlive any bug in a batch: its deliveries are nacked
                    # (redelivered) and the next batch goes on.
                    log.exception("intake batch of %d failed unexpectedly", len(batch))
                    for _, future in batch:
                        _fail(future, exc)
            self._idle.set()

    async def _write(self, batch: list[_Item]) -> None:
        changes = [change for change, _ in batch if change is not None]
        appended: list[FeedRow] = []
        try:
            applied = await self._apply(changes, appended) if changes else []
        except self._transient as exc:
            for _, future in batch:
                _fail(future, exc)
            return
        except Exception as exc:
            if len(batch) > 1:
                # One bad event must not hold back the rest: apply them one at a time.
                log.warning("a batch of %d events failed (%r); applying them one at a time", len(batch), exc)
                for item in batch:
                    await self._write([item])
                return
            _fail(batch[0][1], exc)
            return
        if changes:
            self.batches += 1
            self.events += len(changes)
            self.largest = max(self.largest, len(changes))
        outcomes = iter(applied)
        for change, future in batch:
            outcome = None if change is None else next(outcomes)
            if not future.done():  # its delivery handler may have been cancelled
                future.set_result(outcome)

    async def _apply(self, changes: Sequence[JobChange], appended: list[FeedRow]) -> list[ApplyOutcome]:
        listener = self._listener
        if listener is not None:
            listener.committing()
        try:
            return await self._apply_with_retry(changes, appended)
        finally:
            if listener is not None:
                listener.committed(appended)  # filled only once the transaction committed

    async def _apply_with_retry(self, changes: Sequence[JobChange], appended: list[FeedRow]) -> list[ApplyOutcome]:
        # Ride out a short database outage in place instead of burning deliveries.
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._retry_for_s
        delay = 0.1
        while True:
            try:
                return await self._store.apply_job_events(changes, appended=appended)
            except self._transient:
                if loop.time() + delay > give_up:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)


def _fail(future: asyncio.Future[ApplyOutcome | None], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
