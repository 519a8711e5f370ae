"""WatchPublishJobs: resume by token across restarts, fan-out to many watchers, slow watchers, replicas."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.notifier.domain.tokens import ResumeToken
from speako.notifier.v1 import notifier_service_pb2 as svc
from speako.notifier.v1 import notifier_service_pb2_grpc
from tests.integration.notifier.notifier_support import (
    FAST,
    S,
    collect,
    job_name,
    make_job,
    md,
    wait_for,
)

PROGRESS = [S.STATE_SUBMITTED, S.STATE_PROCESSING, S.STATE_PUBLISHED]


def watch(stub, meta, parent="tenants/acme", resume_token="", timeout=60):
    return stub.WatchPublishJobs(
        svc.WatchPublishJobsRequest(parent=parent, resume_token=resume_token), metadata=meta, timeout=timeout
    )


async def subscribed(replica, n):
    return replica.app.notifier.hub.subscriber_count() >= n


def key(update):
    return (update.job.name, update.job.state)


async def publish_rounds(events, names, chunk=50):
    """Each job through SUBMITTED, PROCESSING, PUBLISHED; jobs concurrently, a job's events in order."""
    for start in range(0, len(names), chunk):
        for seq, state in enumerate(PROGRESS, start=1):
            await asyncio.gather(*(events.publish(make_job(n, state), seq) for n in names[start : start + chunk]))


def assert_complete(updates, names):
    """Every accepted change exactly once, each job's changes in order (jobs interleave freely)."""
    keys = [key(u) for u in updates]
    assert sorted(keys) == sorted((n, s) for n in names for s in PROGRESS)
    for name in names:
        assert [s for n, s in keys if n == name] == PROGRESS
    positions = [ResumeToken.decode(u.resume_token).position for u in updates]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


async def test_slow_watcher_is_cut_off_while_the_others_keep_up_and_it_resumes_by_token(cluster, events, token):
    r = await cluster.start(replace(FAST, subscriber_buffer=200, feed_batch_size=16, heartbeat_s=5))
    meta = md(token(["viewer"]))
    # A client that does not read: tiny HTTP/2 window so the server cannot park updates in transit.
    slow_channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{r.app.port}",
        options=[("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)],
    )
    slow = watch(notifier_service_pb2_grpc.NotifierServiceStub(slow_channel), meta)
    fast = [watch(r.stub, meta) for _ in range(3)]
    await wait_for(lambda: subscribed(r, 4))
    names = [job_name() for _ in range(100)]
    expected = [(name, state) for name in names for state in PROGRESS]
    readers = [asyncio.create_task(collect(f, len(expected))) for f in fast]
    await publish_rounds(events, names)
    results = await asyncio.gather(*readers)
    assert_complete(results[0], names)
    feed = [key(u) for u in results[0]]
    assert all([key(u) for u in got] == feed for got in results)
    assert r.app.notifier.hub.cut_off == 1
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for update in slow:
            received.append(update)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(received) < len(expected)
    assert [key(u) for u in received] == feed[: len(received)]
    # It resumes from its last token and gets the rest, none missing, none repeated.
    rest = await collect(watch(r.stub, meta, resume_token=received[-1].resume_token), len(expected) - len(received))
    assert [key(u) for u in received + rest] == feed
    await slow_channel.close()


async def test_resume_across_a_notifier_restart_misses_nothing(cluster, events, token):
    meta = md(token(["viewer"]))
    first = await cluster.start()
    own = grpc.aio.insecure_channel(f"127.0.0.1:{first.app.port}")
    stream = watch(notifier_service_pb2_grpc.NotifierServiceStub(own), meta)
    await wait_for(lambda: subscribed(first, 1))
    a, b, c = job_name(), job_name(), job_name()
    await events.publish(make_job(a, S.STATE_SUBMITTED), 1)
    await events.publish(make_job(a, S.STATE_PROCESSING), 2)
    seen = await collect(stream, 2)
    assert [key(u) for u in seen] == [(a, S.STATE_SUBMITTED), (a, S.STATE_PROCESSING)]
    # The notifier goes away: the open stream ends with UNAVAILABLE (resume elsewhere/later).
    await first.stop()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await collect(stream, 1)
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    # Changes keep happening while no notifier runs; RabbitMQ holds them.
    await events.publish(make_job(a, S.STATE_PUBLISHED), 3)
    await events.publish(make_job(b, S.STATE_SUBMITTED), 1)
    await events.publish(make_job(b, S.STATE_FAILED), 2)
    second = await cluster.start()
    resumed = watch(second.stub, meta, resume_token=seen[-1].resume_token)
    got = await collect(resumed, 3)
    # Jobs may interleave (events queued meanwhile are consumed concurrently); a job's own stay in order.
    assert sorted(key(u) for u in got) == sorted([(a, S.STATE_PUBLISHED), (b, S.STATE_SUBMITTED), (b, S.STATE_FAILED)])
    assert [key(u) for u in got if u.job.name == b] == [(b, S.STATE_SUBMITTED), (b, S.STATE_FAILED)]
    # ... and the same stream carries on live, without repeating anything.
    await events.publish(make_job(c, S.STATE_SUBMITTED), 1)
    assert [key(u) for u in await collect(resumed, 1)] == [(c, S.STATE_SUBMITTED)]
    resumed.cancel()
    await own.close()


async def test_resume_joins_the_live_feed_without_gap_or_duplicate_under_load(cluster, events, token):
    r = await cluster.start(replace(FAST, replay_page_size=7))
    meta = md(token(["viewer"]))
    reference = watch(r.stub, meta)
    await wait_for(lambda: subscribed(r, 1))
    names = [job_name() for _ in range(20)]
    reader = asyncio.create_task(collect(reference, 3 * len(names)))
    publishing = asyncio.create_task(publish_rounds(events, names))
    # Resume from the start while updates are still arriving (replay in pages, then live).
    await wait_for(lambda: _state_of(r, names[0]))
    zero = ResumeToken(r.app.notifier.tailer.epoch, 0).encode()
    resumed = await collect(watch(r.stub, meta, resume_token=zero), 3 * len(names))
    await publishing
    full = await reader
    assert_complete(full, names)
    assert [key(u) for u in resumed] == [key(u) for u in full]
    assert [u.resume_token for u in resumed] == [u.resume_token for u in full]


async def _state_of(replica, name):
    return await replica.app.notifier.store.get_job(name)


async def test_500_concurrent_watchers_all_receive_every_update(cluster, events, token):
    r = await cluster.start(replace(FAST, heartbeat_s=5))
    meta = md(token(["viewer"]))
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{r.app.port}") for _ in range(10)]
    stubs = [notifier_service_pb2_grpc.NotifierServiceStub(ch) for ch in channels]
    parents = ["tenants/acme", "tenants/acme/agents/front-desk"]
    streams = [watch(stubs[i % 10], meta, parent=parents[i % 2]) for i in range(500)]
    await wait_for(lambda: subscribed(r, 500), timeout=15)
    names = [job_name() for _ in range(10)]
    readers = [asyncio.create_task(collect(s, 30)) for s in streams]
    await publish_rounds(events, names)
    results = await asyncio.gather(*readers)
    assert_complete(results[0], names)
    feed = [u.resume_token for u in results[0]]
    assert all([u.resume_token for u in got] == feed for got in results)
    assert r.app.notifier.hub.cut_off == 0
    for ch in channels:
        await ch.close()


async def test_watcher_on_one_replica_sees_updates_consumed_by_another(cluster, events, token):
    meta = md(token(["viewer"]))
    consuming = await cluster.start()
    watching = await cluster.start()
    await watching.app.notifier.consumer.stop()  # every event is now consumed by the first replica
    on_watching = watch(watching.stub, meta)
    on_consuming = watch(consuming.stub, meta)
    await wait_for(lambda: subscribed(watching, 1))
    await wait_for(lambda: subscribed(consuming, 1))
    names = [job_name() for _ in range(10)]
    readers = [asyncio.create_task(collect(s, 30)) for s in (on_watching, on_consuming)]
    await publish_rounds(events, names)
    remote, local = await asyncio.gather(*readers)
    assert_complete(remote, names)
    assert [u.resume_token for u in remote] == [u.resume_token for u in local]
    # (The counters move just after the commit that the watchers already saw.)
    await wait_for(lambda: _applied(consuming, 30))
    assert watching.app.notifier.consumer.applied == 0


async def test_two_competing_replicas_give_every_watcher_the_same_feed(cluster, events, token):
    meta = md(token(["viewer"]))
    a, b = await cluster.start(), await cluster.start()
    streams = [watch(a.stub, meta), watch(b.stub, meta)]
    await wait_for(lambda: subscribed(a, 1))
    await wait_for(lambda: subscribed(b, 1))
    names = [job_name() for _ in range(20)]
    readers = [asyncio.create_task(collect(s, 20)) for s in streams]
    await asyncio.gather(*(events.publish(make_job(n, S.STATE_SUBMITTED), 1) for n in names))
    on_a, on_b = await asyncio.gather(*readers)
    assert sorted(u.job.name for u in on_a) == sorted(names)
    assert [u.resume_token for u in on_a] == [u.resume_token for u in on_b]
    await wait_for(lambda: _applied_total([a, b], 20))


async def _applied(replica, n):
    return replica.app.notifier.consumer.applied == n


async def _applied_total(replicas, n):
    return sum(r.app.notifier.consumer.applied for r in replicas) == n


async def test_resume_token_errors(cluster, events, token):
    r = await cluster.start()
    meta = md(token(["viewer"]))
    name = job_name()
    await events.publish(make_job(name, S.STATE_SUBMITTED), 1)
    await wait_for(lambda: _state_of(r, name))
    epoch = r.app.notifier.tailer.epoch

    async def code_of(resume_token):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await collect(watch(r.stub, meta, resume_token=resume_token, timeout=5), 1)
        return err.value

    bad = await code_of("not a token")
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    violation = error_details_pb2.BadRequest()
    rpc_status.from_call(bad).details[-1].Unpack(violation)
    assert violation.field_violations[0].field == "resume_token"
    assert (await code_of(ResumeToken(epoch, 10**6).encode())).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await code_of(ResumeToken("f" * 16, 0).encode())).code() == grpc.StatusCode.OUT_OF_RANGE
    # Retention drops the old part of the feed: a token from before it is too old to serve.
    await r.app.notifier.store.prune(timedelta(0))
    assert (await code_of(ResumeToken(epoch, 0).encode())).code() == grpc.StatusCode.OUT_OF_RANGE
    # The newest position is still a fine place to resume from.
    fresh = watch(r.stub, meta, resume_token=ResumeToken(epoch, 1).encode(), timeout=5)
    assert (await collect(fresh, 1, skip_heartbeats=False))[0].heartbeat
    fresh.cancel()
