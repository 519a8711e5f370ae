"""Group commit of calls: batching, failure propagation and shutdown flush (fake insert)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from services.activation.calls import CallRecorder, CallsNotRecorded
from services.activation.domain.status import CallRecord


def call() -> CallRecord:
    return CallRecord(
        uuid.uuid4(),
        "tenants/a/agents/b",
        "tenants/a/agents/b/versions/1",
        "0" * 64,
        "+14155550001",
        "",
        datetime.now(UTC),
    )


class FakeInsert:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[CallRecord]] = []
        self.fail = fail
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, calls):
        await self.gate.wait()
        if self.fail:
            raise OSError("database down")
        self.batches.append(list(calls))


async def test_calls_arriving_together_share_a_batch_and_all_return():
    insert = FakeInsert()
    insert.gate.clear()
    recorder = CallRecorder([insert])
    runner = asyncio.create_task(recorder.run())
    first = asyncio.create_task(recorder.record(call()))
    await asyncio.sleep(0.01)  # the writer now holds batch 1 at the gate
    rest = [asyncio.create_task(recorder.record(call())) for _ in range(50)]
    await asyncio.sleep(0.01)
    insert.gate.set()
    await asyncio.gather(first, *rest)
    assert [len(b) for b in insert.batches] == [1, 50]
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


async def test_a_failed_batch_fails_each_of_its_calls():
    recorder = CallRecorder([FakeInsert(fail=True)] * 2)
    runner = asyncio.create_task(recorder.run())
    results = await asyncio.gather(*(recorder.record(call()) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, CallsNotRecorded) for r in results)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


async def test_batches_respect_the_size_limit():
    insert = FakeInsert()
    recorder = CallRecorder([insert], max_batch=10)
    waiters = [asyncio.create_task(recorder.record(call())) for _ in range(25)]
    runner = asyncio.create_task(recorder.run())
    await asyncio.gather(*waiters)
    assert [len(b) for b in insert.batches] == [10, 10, 5]
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


async def test_after_stop_new_calls_are_refused():
    recorder = CallRecorder([FakeInsert()])
    runner = asyncio.create_task(recorder.run())
    await recorder.record(call())
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    with pytest.raises(CallsNotRecorded):
        await recorder.record(call())
