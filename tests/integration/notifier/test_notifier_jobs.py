"""Job read model and WatchPublishJob against real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from speako.notifier.v1 import notifier_service_pb2 as svc
from tests.integration.notifier.notifier_support import (
    FAST,
    S,
    collect,
    get_job,
    job_name,
    make_job,
    md,
    ts,
    wait_for,
)


async def test_out_of_order_and_duplicate_delivery_never_regress_the_job(cluster, events, token):
    r = await cluster.start()
    meta = md(token(["viewer"], "acme"))
    name = job_name()
    first = await events.publish(make_job(name, S.STATE_PROCESSING, attempts=1), 2)
    await events.publish(make_job(name, S.STATE_PUBLISHED, attempts=1), 3)
    await wait_for(lambda: _state_is(r.stub, name, meta, S.STATE_PUBLISHED))
    # A late SUBMITTED (sequence 1), a redelivered PROCESSING (same message_id) and a replayed one.
    await events.publish(make_job(name, S.STATE_SUBMITTED), 1)
    await events.publish(make_job(name, S.STATE_PROCESSING, attempts=1), 2, message_id=first)
    await events.publish(make_job(name, S.STATE_PROCESSING, attempts=1), 2)
    marker = job_name()
    await events.publish(make_job(marker, S.STATE_SUBMITTED), 1)
    await wait_for(lambda: get_job(r.stub, marker, meta))  # everything before it was consumed
    job = await get_job(r.stub, name, meta)
    assert job.state == S.STATE_PUBLISHED and job.attempts == 1
    # The feed holds exactly the two accepted changes of the job.
    stream = r.stub.WatchPublishJobs(
        svc.WatchPublishJobsRequest(parent="tenants/acme/agents/front-desk", resume_token=_zero_token(r)),
        metadata=meta,
        timeout=10,
    )
    updates = await collect(stream, 3)
    stream.cancel()
    assert [(u.job.name, u.job.state) for u in updates] == [
        (name, S.STATE_PROCESSING),
        (name, S.STATE_PUBLISHED),
        (marker, S.STATE_SUBMITTED),
    ]


def _zero_token(replica) -> str:
    from services.notifier.domain.tokens import ResumeToken

    return ResumeToken(replica.app.notifier.tailer.epoch, 0).encode()


async def _state_is(stub, name, meta, state):
    job = await get_job(stub, name, meta)
    return job is not None and job.state == state


async def test_get_publish_job_errors(cluster, token):
    r = await cluster.start()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await r.stub.GetPublishJob(svc.GetPublishJobRequest(name=job_name()), metadata=md(token(["viewer"])), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await r.stub.GetPublishJob(svc.GetPublishJobRequest(name="jobs/1"), metadata=md(token(["viewer"])), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = rpc_status.from_call(err.value).details
    bad = error_details_pb2.BadRequest()
    assert details[0].Unpack(bad) and bad.field_violations[0].field == "name"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await r.stub.GetPublishJob(
            svc.GetPublishJobRequest(name=job_name("other")), metadata=md(token(["viewer"], "acme")), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await r.stub.GetPublishJob(svc.GetPublishJobRequest(name=job_name()), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_list_publish_jobs_filters_and_pages_newest_first(cluster, events, token):
    r = await cluster.start()
    meta = md(token(["viewer"], "acme"))
    base = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    names = []
    for i in range(7):
        name = job_name(agent="desk" if i % 2 else "lobby")
        state = S.STATE_FAILED if i in (2, 3, 5) else S.STATE_PUBLISHED
        await events.publish(make_job(name, state, created=base + timedelta(minutes=i)), 4)
        names.append(name)
    await events.publish(make_job(job_name("other"), S.STATE_FAILED, created=base), 4)
    await wait_for(lambda: _count(r.stub, "tenants/acme", meta, 7))

    pages, token_ = [], ""
    while True:
        resp = await r.stub.ListPublishJobs(
            svc.ListPublishJobsRequest(parent="tenants/acme", page_size=3, page_token=token_), metadata=meta, timeout=5
        )
        pages.append([j.name for j in resp.publish_jobs])
        token_ = resp.next_page_token
        if not token_:
            break
    assert [n for page in pages for n in page] == list(reversed(names))
    assert [len(p) for p in pages] == [3, 3, 1]

    failed_around_3pm = await r.stub.ListPublishJobs(
        svc.ListPublishJobsRequest(
            parent="tenants/acme",
            states=[S.STATE_FAILED],
            create_time_start=ts(base + timedelta(minutes=3)),
            create_time_end=ts(base + timedelta(minutes=6)),
        ),
        metadata=meta,
        timeout=5,
    )
    assert [j.name for j in failed_around_3pm.publish_jobs] == [names[5], names[3]]
    assert all(j.changed_sections == ["greetings"] for j in failed_around_3pm.publish_jobs)

    desk = await r.stub.ListPublishJobs(
        svc.ListPublishJobsRequest(parent="tenants/acme/agents/desk"), metadata=meta, timeout=5
    )
    assert [j.name for j in desk.publish_jobs] == [names[5], names[3], names[1]]

    for bad, field in [
        (svc.ListPublishJobsRequest(parent="tenants/acme", page_size=-1), "page_size"),
        (svc.ListPublishJobsRequest(parent="tenants/acme", states=[0]), "states"),
        (svc.ListPublishJobsRequest(parent="tenants/acme", page_token="garbage"), "page_token"),
        (svc.ListPublishJobsRequest(parent="acme"), "parent"),
        (
            svc.ListPublishJobsRequest(
                parent="tenants/acme", create_time_start=ts(base), create_time_end=ts(base - timedelta(hours=1))
            ),
            "create_time_end",
        ),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await r.stub.ListPublishJobs(bad, metadata=meta, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        bad_request = error_details_pb2.BadRequest()
        rpc_status.from_call(err.value).details[-1].Unpack(bad_request)
        assert bad_request.field_violations[0].field == field
    # A page token only works with the filters it was issued for.
    first = await r.stub.ListPublishJobs(
        svc.ListPublishJobsRequest(parent="tenants/acme", page_size=1), metadata=meta, timeout=5
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await r.stub.ListPublishJobs(
            svc.ListPublishJobsRequest(
                parent="tenants/acme/agents/desk", page_size=1, page_token=first.next_page_token
            ),
            metadata=meta,
            timeout=5,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def _count(stub, parent, meta, n):
    resp = await stub.ListPublishJobs(svc.ListPublishJobsRequest(parent=parent), metadata=meta, timeout=5)
    return len(resp.publish_jobs) == n


async def test_watch_publish_job_waits_for_an_unknown_job_then_follows_it_to_the_end(cluster, events, token):
    r = await cluster.start(replace(FAST, heartbeat_s=0.3, job_wait_s=10))
    name = job_name()
    stream = r.stub.WatchPublishJob(svc.WatchPublishJobRequest(name=name), metadata=md(token(["viewer"])), timeout=15)
    received = []

    async def read():
        async for update in stream:
            received.append(update)

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.5)  # the watcher is waiting for a job the notifier has not heard of
    assert not reader.done()
    await events.publish(make_job(name, S.STATE_SUBMITTED), 1)
    await wait_for(lambda: _has(received, S.STATE_SUBMITTED))
    await wait_for(lambda: _heartbeat_seen(received))  # idle stream: keep-alives repeat the last state
    await events.publish(make_job(name, S.STATE_PROCESSING, attempts=1), 2)
    await events.publish(make_job(name, S.STATE_FAILED, attempts=1), 3)
    await asyncio.wait_for(reader, 10)  # the stream ends after the terminal state
    changes = [u for u in received if not u.heartbeat]
    assert [u.job.state for u in changes] == [S.STATE_SUBMITTED, S.STATE_PROCESSING, S.STATE_FAILED]
    assert len({u.resume_token for u in changes}) == 3
    beats = [u for u in received if u.heartbeat]
    assert beats and all(b.job.state in (S.STATE_SUBMITTED, S.STATE_PROCESSING) and b.job.name == name for b in beats)


async def _has(received, state):
    return any(u.job.state == state for u in received)


async def _heartbeat_seen(received):
    return any(u.heartbeat for u in received)


async def test_watch_publish_job_of_a_finished_job_sends_its_state_and_ends(cluster, events, token):
    r = await cluster.start()
    meta = md(token(["viewer"]))
    name = job_name()
    await events.publish(make_job(name, S.STATE_PUBLISHED, attempts=2), 3)
    await wait_for(lambda: get_job(r.stub, name, meta))
    updates = [u async for u in r.stub.WatchPublishJob(svc.WatchPublishJobRequest(name=name), metadata=meta, timeout=5)]
    assert [(u.job.state, u.job.attempts, u.heartbeat) for u in updates] == [(S.STATE_PUBLISHED, 2, False)]


async def test_watch_publish_job_gives_up_on_a_job_that_never_appears(cluster, token):
    r = await cluster.start(replace(FAST, job_wait_s=0.5))
    stream = r.stub.WatchPublishJob(
        svc.WatchPublishJobRequest(name=job_name()), metadata=md(token(["viewer"])), timeout=5
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await collect(stream, 1)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_streams_per_tenant_are_capped(cluster, events, token):
    r = await cluster.start(replace(FAST, max_streams_per_tenant=2))
    meta = md(token(["viewer"], "acme"))
    open_ = [
        r.stub.WatchPublishJobs(svc.WatchPublishJobsRequest(parent="tenants/acme"), metadata=meta, timeout=10)
        for _ in range(2)
    ]
    for s in open_:
        await collect(s, 1, skip_heartbeats=False)  # both are established
    third = r.stub.WatchPublishJobs(svc.WatchPublishJobsRequest(parent="tenants/acme"), metadata=meta, timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await collect(third, 1, skip_heartbeats=False)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Another tenant is not affected, and a closed stream frees its slot.
    other = r.stub.WatchPublishJobs(
        svc.WatchPublishJobsRequest(parent="tenants/beta"), metadata=md(token(["viewer"], "beta")), timeout=10
    )
    assert (await collect(other, 1, skip_heartbeats=False))[0].heartbeat
    open_[0].cancel()
    await wait_for(lambda: _slots(r, "acme", 1))
    again = r.stub.WatchPublishJobs(svc.WatchPublishJobsRequest(parent="tenants/acme"), metadata=meta, timeout=10)
    assert (await collect(again, 1, skip_heartbeats=False))[0].heartbeat
    for s in (open_[1], other, again):
        s.cancel()


async def _slots(replica, tenant, n):
    return replica.app.notifier.servicer.limiter.open_streams(tenant) == n
