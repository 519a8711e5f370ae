"""Batched intake without servers: the writer's order and batching, ack coalescing, acceptance in order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.notifier.domain.jobs import JobKey, Revision, accepted_in_order
from services.notifier.intake import BatchWriter
from services.notifier.messaging import AckBatcher
from services.notifier.store import ApplyOutcome, FeedRow, JobChange
from speako.config.v1 import resources_pb2

S = resources_pb2.PublishJob.State
JOB = "tenants/acme/agents/front-desk/publishJobs/0b6f6c4e-8a43-4c1b-9d0e-1f2a3b4c5d6e"


def test_events_are_judged_against_the_accepted_ones_before_them():
    revs = [Revision(2, S.STATE_PROCESSING), Revision(1, S.STATE_SUBMITTED), Revision(3, S.STATE_FAILED)]
    assert accepted_in_order(None, revs) == [True, False, True]
    assert accepted_in_order(Revision(3, S.STATE_PUBLISHED), [Revision(4, S.STATE_PROCESSING)]) == [False]
    assert accepted_in_order(Revision(1, S.STATE_SUBMITTED), [Revision(1, S.STATE_SUBMITTED)]) == [False]


def change(n: int) -> JobChange:
    return JobChange(f"m{n}", JobKey.of(JOB), resources_pb2.PublishJob(name=JOB), n)


class FakeStore:
    def __init__(self, poison: str = "") -> None:
        self.batches: list[list[str]] = []
        self.poison = poison
        self.release = asyncio.Event()
        self.release.set()

    async def apply_job_events(
        self, changes: Sequence[JobChange], *, appended: list[FeedRow] | None = None
    ) -> list[ApplyOutcome]:
        await self.release.wait()
        if any(c.message_id == self.poison for c in changes):
            raise ValueError("poison")
        self.batches.append([c.message_id for c in changes])
        if appended is not None:
            appended.extend(FeedRow(c.sequence, "job", None, None, c.key.name, b"") for c in changes)
        return [ApplyOutcome.APPLIED] * len(changes)


async def test_the_writer_batches_what_waits_and_keeps_submission_order():
    store = FakeStore()
    commits = Commits()
    writer = BatchWriter(store, transient=(OSError,), max_batch=3, listener=commits)  # type: ignore[arg-type]
    writer.start()
    store.release.clear()
    first = asyncio.create_task(writer.submit(change(0)))
    await asyncio.sleep(0.01)  # the writer holds change 0 and waits on the "database"
    rest = [asyncio.create_task(writer.submit(c)) for c in [change(1), None, change(2), change(3), change(4)]]
    await asyncio.sleep(0)
    store.release.set()
    results = await asyncio.gather(first, *rest)
    assert results == [ApplyOutcome.APPLIED, ApplyOutcome.APPLIED, None, *[ApplyOutcome.APPLIED] * 3]
    # At most 3 deliveries per batch (the no-op one counts), in submission order.
    assert store.batches == [["m0"], ["m1", "m2"], ["m3", "m4"]]
    # Each commit is announced, then hands its feed rows to the tailer.
    assert commits.log == ["committing", [0], "committing", [1, 2], "committing", [3, 4]]
    await writer.close()


class Commits:
    def __init__(self) -> None:
        self.log: list[object] = []

    def committing(self) -> None:
        self.log.append("committing")

    def committed(self, rows: list[FeedRow]) -> None:
        self.log.append([r.position for r in rows])


async def test_one_bad_event_fails_alone_and_the_rest_of_its_batch_commits():
    store = FakeStore(poison="m2")
    commits = Commits()
    writer = BatchWriter(store, transient=(OSError,), listener=commits)  # type: ignore[arg-type]
    writer.start()
    tasks = [asyncio.create_task(writer.submit(change(n))) for n in range(4)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(r) for r in results] == [ApplyOutcome, ApplyOutcome, ValueError, ApplyOutcome]
    assert sorted(m for b in store.batches for m in b) == ["m0", "m1", "m3"]
    # Every commit that was announced is closed, the failed ones with no rows (the tailer waits on them).
    assert commits.log.count("committing") == len([e for e in commits.log if e != "committing"])
    assert [] in commits.log
    await writer.close()


class FakeChannel:
    def __init__(self) -> None:
        self.frames: list[tuple[str, int, bool]] = []


class FakeMessage:
    def __init__(self, channel: FakeChannel, tag: int) -> None:
        self.channel = channel
        self.delivery_tag = tag

    async def ack(self, multiple: bool = False) -> None:
        self.channel.frames.append(("ack", self.delivery_tag, multiple))


async def test_acks_coalesce_up_to_the_first_delivery_still_in_flight():
    channel = FakeChannel()
    acks = AckBatcher()
    msgs = [FakeMessage(channel, tag) for tag in range(1, 7)]
    for m in msgs:
        acks.received(m)  # type: ignore[arg-type]
    for m in (msgs[0], msgs[1], msgs[3], msgs[4]):
        acks.ack(m)  # type: ignore[arg-type]
    await acks.close()
    # 3 is in flight: one frame settles 1-2; 4 and 5 are acked one by one (never "up to 5").
    assert channel.frames == [("ack", 2, True), ("ack", 4, False), ("ack", 5, False)]
    channel.frames.clear()
    acks.settled(msgs[2])  # 3 was nacked on its own
    acks.ack(msgs[5])
    await acks.close()
    assert channel.frames == [("ack", 6, True)]


@pytest.mark.parametrize("max_batch", [0, -1])
def test_the_writer_needs_a_positive_batch(max_batch):
    with pytest.raises(ValueError):
        BatchWriter(FakeStore(), transient=(), max_batch=max_batch)  # type: ignore[arg-type]
