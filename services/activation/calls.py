"""Group commit of routed calls: calls arriving together are pinned with one COPY.

RouteCall answers only after its call is committed (the pin is durable), but a commit per call
would cap throughput at the disk's flush rate. Writers take everything queued, write it in one
round trip, and resolve every waiter; while one batch commits, the next one gathers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from services.activation.domain.status import CallRecord

log = logging.getLogger("speako.activation.calls")

InsertCalls = Callable[[Sequence[CallRecord]], Awaitable[None]]


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
    ) -> None:
        """One writer per insert function: while one batch commits, another may be written."""
        self._inserts = list(inserts)
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
