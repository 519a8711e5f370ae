"""Group commit of calls: batching, lingering under load, failure propagation and shutdown flush (fake insert)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from services.activation.calls import BusyLoopLinger, CallRecorder, CallsNotRecorded
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


async def test_a_lingering_batch_gathers_the_calls_that_arrive_meanwhile():
    insert = FakeInsert()
    recorder = CallRecorder([insert], linger=lambda: 0.3)
    first = asyncio.create_task(recorder.record(call()))
    writer = asyncio.create_task(recorder.run())
    await asyncio.sleep(0.01)  # the writer has woken and is lingering
    assert insert.batches == []
    later = [asyncio.create_task(recorder.record(call())) for _ in range(4)]
    async with asyncio.timeout(5):
        await asyncio.gather(first, *later)
    assert [len(b) for b in insert.batches] == [5]
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)


async def test_a_full_batch_does_not_linger():
    insert = FakeInsert()
    recorder = CallRecorder([insert], max_batch=3, linger=lambda: 60.0)
    waiters = [asyncio.create_task(recorder.record(call())) for _ in range(3)]
    writer = asyncio.create_task(recorder.run())
    async with asyncio.timeout(5):
        await asyncio.gather(*waiters)
    assert [len(b) for b in insert.batches] == [3]
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)


async def test_without_linger_a_lone_call_is_written_at_once():
    insert = FakeInsert()
    recorder = CallRecorder([insert])
    writer = asyncio.create_task(recorder.run())
    first = asyncio.create_task(recorder.record(call()))
    await asyncio.sleep(0.01)
    assert [len(b) for b in insert.batches] == [1]
    await first
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)


async def test_calls_waiting_in_a_linger_are_written_when_the_recorder_stops():
    insert = FakeInsert()
    recorder = CallRecorder([insert], linger=lambda: 60.0)
    writer = asyncio.create_task(recorder.run())
    pending = [asyncio.create_task(recorder.record(call())) for _ in range(3)]
    await asyncio.sleep(0.01)
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    async with asyncio.timeout(5):
        await asyncio.gather(*pending)
    assert [len(b) for b in insert.batches] == [3]


class Clocks:
    """Wall and thread-CPU clocks the test advances."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def spend(self, seconds: float, cpu_share: float) -> None:
        self.wall += seconds
        self.cpu += seconds * cpu_share


def linger_on(clocks: Clocks) -> BusyLoopLinger:
    return BusyLoopLinger(
        0.003, busy_from=0.9, idle_below=0.6, window_s=0.05, wall=lambda: clocks.wall, cpu=lambda: clocks.cpu
    )


def test_an_idle_loop_never_lingers():
    clocks = Clocks()
    linger = linger_on(clocks)
    assert linger() == 0.0  # the first call only takes the first reading
    for _ in range(5):
        clocks.spend(0.06, 0.3)
        assert linger() == 0.0


def test_a_saturated_loop_lingers_until_its_load_falls_below_the_low_mark():
    clocks = Clocks()
    linger = linger_on(clocks)
    linger()
    clocks.spend(0.06, 0.95)
    assert linger() == 0.003
    clocks.spend(0.06, 0.7)  # between the marks: keeps lingering
    assert linger() == 0.003
    clocks.spend(0.06, 0.5)
    assert linger() == 0.0
    clocks.spend(0.06, 0.7)  # between the marks: stays off
    assert linger() == 0.0


def test_the_decision_changes_only_once_a_window_has_passed():
    clocks = Clocks()
    linger = linger_on(clocks)
    linger()
    clocks.spend(0.01, 1.0)  # a short busy burst is not a saturated loop
    assert linger() == 0.0
    clocks.spend(0.045, 1.0)
    assert linger() == 0.003


def test_busy_time_before_the_first_call_is_not_counted():
    clocks = Clocks()
    linger = linger_on(clocks)
    clocks.spend(1.0, 1.0)  # start-up work before the writer first asks
    assert linger() == 0.0
    clocks.spend(0.06, 0.3)
    assert linger() == 0.0


@pytest.mark.parametrize(
    "kwargs", [{"window_s": 0}, {"busy_from": 0.5, "idle_below": 0.6}, {"linger_s": -1.0}, {"idle_below": -0.1}]
)
def test_a_linger_policy_that_cannot_work_is_refused(kwargs):
    with pytest.raises(ValueError):
        BusyLoopLinger(**kwargs)
