"""Batched intake against real PostgreSQL (and RabbitMQ): two replicas, bursts, duplicates, reordering."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from chassis import database
from services.notifier.domain.jobs import JobKey
from services.notifier.domain.notifications import failed_job_notification
from services.notifier.domain.tokens import ResumeToken
from services.notifier.main import MIGRATIONS_DIR, SCHEMA
from services.notifier.store import ApplyOutcome, JobChange, NotifierStore
from speako.notifier.v1 import notifier_service_pb2 as svc
from tests.integration.notifier.notifier_support import S, job_name, make_job, md, wait_for

FINAL = {True: S.STATE_FAILED, False: S.STATE_PUBLISHED}


def job_events(names: list[str], fail_every: int = 4) -> list[JobChange]:
    """Each job's three changes (every ``fail_every``-th job fails), each with its own message_id."""
    out = []
    for i, name in enumerate(names):
        final = FINAL[bool(fail_every) and i % fail_every == 0]
        for seq, state in enumerate([S.STATE_SUBMITTED, S.STATE_PROCESSING, final], start=1):
            job = make_job(name, state)
            failure = failed_job_notification(job) if state == S.STATE_FAILED else None
            out.append(JobChange(str(uuid.uuid4()), JobKey.of(name), job, seq, failure))
    return out


async def test_two_replicas_writing_batches_keep_the_feed_gap_free_ordered_and_never_regress(database_url):
    await database.migrate(database_url, SCHEMA, [MIGRATIONS_DIR])
    pools = [await database.create_pool(database_url, SCHEMA, min_size=1, max_size=3) for _ in range(3)]
    a, b, reader = (NotifierStore(p) for p in pools)
    try:
        names = [job_name(agent=f"a{i % 5}") for i in range(60)]
        changes = job_events(names)
        rng = random.Random(7)
        # Each replica receives every event (redelivery: the same message_id twice), in its own
        # shuffled order, plus in-batch repeats; the replicas write batches at the same time.
        streams = []
        for _ in (a, b):
            mine = changes + rng.sample(changes, 40)
            rng.shuffle(mine)
            streams.append(mine)
        seen: list[int] = []
        writing = True

        async def tail() -> None:
            # A reader of "position > last" (the tailer) must never skip a row that commits later.
            last = 0
            while writing or last < (await reader.head()).last_position:
                for row in await reader.read_feed(last, 1000):
                    seen.append(row.position)
                    last = row.position
                await asyncio.sleep(0)

        async def write(store: NotifierStore, stream: list[JobChange]) -> list[ApplyOutcome]:
            outcomes = []
            i = 0
            while i < len(stream):
                n = rng.randint(1, 40)
                outcomes += await store.apply_job_events(stream[i : i + n])
                i += n
            return outcomes

        tailer = asyncio.create_task(tail())
        results = await asyncio.gather(write(a, streams[0]), write(b, streams[1]))
        writing = False
        await tailer

        head = await reader.head()
        rows = await reader.read_feed(0, 10_000)
        assert [r.position for r in rows] == list(range(1, head.last_position + 1))
        assert seen == [r.position for r in rows]  # read while writing: nothing skipped, nothing twice
        applied = sum(o is ApplyOutcome.APPLIED for outcomes in results for o in outcomes)
        job_rows = [r for r in rows if r.kind == "job"]
        assert applied == len(job_rows)  # each accepted change once, whoever applied it
        by_job: dict[str, list[tuple[int, int]]] = {}
        for r in job_rows:
            job = make_job(r.subject, 0)
            job.ParseFromString(r.payload)
            by_job.setdefault(r.subject, []).append((r.position, job.state))
        for i, name in enumerate(names):
            states = [state for _, state in by_job[name]]
            # States only move forward, and the terminal one is the last and is stored.
            assert states == sorted(states) and len(set(states)) == len(states)
            assert states[-1] == FINAL[i % 4 == 0]
            stored = await reader.get_job(name)
            assert stored is not None and stored.job.state == FINAL[i % 4 == 0]
            assert stored.position == by_job[name][-1][0]
        notes = [r for r in rows if r.kind == "notification"]
        assert sorted(r.tenant for r in notes) == ["tenants/acme"] * 15  # one per failed job
        async with pools[2].acquire() as con:
            assert await con.fetchval("SELECT count(*) FROM notifications") == 15
            assert await con.fetchval("SELECT count(DISTINCT publish_job) FROM notifications") == 15
    finally:
        for p in pools:
            await p.close()


async def test_a_batch_applies_in_delivery_order_with_duplicates_and_stale_events(database_url):
    await database.migrate(database_url, SCHEMA, [MIGRATIONS_DIR])
    pool = await database.create_pool(database_url, SCHEMA, min_size=1, max_size=2)
    store = NotifierStore(pool)
    try:
        name = job_name()
        sub, proc, pub = job_events([name], fail_every=0)
        proc_again = JobChange(proc.message_id, proc.key, proc.job, proc.sequence)
        late_sub = JobChange(str(uuid.uuid4()), sub.key, sub.job, sub.sequence)
        outcomes = await store.apply_job_events([sub, proc, proc_again, late_sub])
        assert outcomes == [ApplyOutcome.APPLIED, ApplyOutcome.APPLIED, ApplyOutcome.DUPLICATE, ApplyOutcome.STALE]
        # The terminal state first, then a late PROCESSING: final stays final.
        late_proc = JobChange(str(uuid.uuid4()), proc.key, proc.job, proc.sequence)
        assert await store.apply_job_events([pub, late_proc, pub]) == [
            ApplyOutcome.APPLIED,
            ApplyOutcome.STALE,
            ApplyOutcome.DUPLICATE,
        ]
        stored = await store.get_job(name)
        assert stored is not None and stored.job.state == S.STATE_PUBLISHED
        rows = await store.read_feed(0, 100)
        assert [r.position for r in rows] == [1, 2, 3]
        assert stored.position == 3
    finally:
        await pool.close()


@pytest.mark.parametrize("replicas", [1, 2])
async def test_a_burst_with_redeliveries_and_reordering_never_regresses_and_every_replica_serves_one_order(
    cluster, events, token, replicas
):
    meta = md(token(["viewer"]))
    names = [job_name() for _ in range(40)]
    # Queued before any replica runs, so the replicas take it in batches.
    for name in names[:20]:
        await events.publish(make_job(name, S.STATE_PROCESSING), 2)  # overtakes SUBMITTED
    for name in names:
        await events.publish(make_job(name, S.STATE_SUBMITTED), 1)
    ids = [await events.publish(make_job(name, S.STATE_PUBLISHED), 3) for name in names]
    for name, message_id in zip(names, ids, strict=True):
        await events.publish(make_job(name, S.STATE_PUBLISHED), 3, message_id=message_id)  # a redelivery
    for name in names[20:]:
        await events.publish(make_job(name, S.STATE_PROCESSING), 2)  # too late: PUBLISHED is stored
    group = [await cluster.start() for _ in range(replicas)]

    async def done():
        return sum(r.app.notifier.consumer.applied + r.app.notifier.consumer.skipped for r in group) == 160

    await wait_for(done)
    assert max(r.app.notifier.consumer.writer.largest for r in group) > 1  # it did batch
    feeds = []
    for r in group:
        token0 = ResumeToken(r.app.notifier.tailer.epoch, 0).encode()
        stream = r.stub.WatchPublishJobs(
            svc.WatchPublishJobsRequest(parent="tenants/acme", resume_token=token0), metadata=meta, timeout=30
        )
        feed = []
        async for update in stream:  # the replay, up to the first heartbeat (nothing more is coming)
            if update.heartbeat:
                break
            feed.append(update)
        stream.cancel()
        feeds.append(feed)
    assert all([u.resume_token for u in f] == [u.resume_token for u in feeds[0]] for f in feeds)
    positions = [ResumeToken.decode(u.resume_token).position for u in feeds[0]]
    assert positions == list(range(1, len(positions) + 1))
    per_job: dict[str, list[int]] = {}
    for u in feeds[0]:
        per_job.setdefault(u.job.name, []).append(u.job.state)
    for name in names:
        assert per_job[name] == sorted(set(per_job[name])) and per_job[name][-1] == S.STATE_PUBLISHED
    if replicas == 1:
        # One writer applies in delivery order: PROCESSING overtook SUBMITTED (then stale) on the
        # first 20; on the rest the late PROCESSING is stale behind PUBLISHED; redeliveries count once.
        assert {n: per_job[n] for n in names[:20]} == {n: [S.STATE_PROCESSING, S.STATE_PUBLISHED] for n in names[:20]}
        assert {n: per_job[n] for n in names[20:]} == {n: [S.STATE_SUBMITTED, S.STATE_PUBLISHED] for n in names[20:]}
        assert group[0].app.notifier.consumer.applied == 80
