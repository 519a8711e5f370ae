"""Notification Center: one System notification per failed job, maintenance notices, read state, watch."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from speako.config.v1 import resources_pb2
from speako.notifier.v1 import notifier_service_pb2 as svc
from speako.notifier.v1 import resources_pb2 as npb
from tests.integration.notifier.notifier_support import S, collect, job_name, make_job, md, ts, wait_for

SYSTEM = npb.Notification.CATEGORY_SYSTEM
MAINTENANCE = npb.Notification.CATEGORY_MAINTENANCE


async def listed(stub, meta, tenant="acme", **kw):
    resp = await stub.ListNotifications(
        svc.ListNotificationsRequest(parent=f"tenants/{tenant}", **kw), metadata=meta, timeout=5
    )
    return list(resp.notifications)


async def test_each_failed_job_raises_exactly_one_system_notification_under_redelivery(cluster, events, token):
    a, b = await cluster.start(), await cluster.start()  # two competing consumers
    meta = md(token(["viewer"]))
    watcher = a.stub.WatchNotifications(svc.WatchNotificationsRequest(parent="tenants/acme"), metadata=meta, timeout=20)
    await wait_for(lambda: _subscribed(a))
    first, second = job_name(), job_name(agent="lobby")
    failed = make_job(
        first, S.STATE_FAILED, version=3, attempts=4, reason=resources_pb2.PublishError.REASON_DEPLOY_UNAVAILABLE
    )
    message_id = str(uuid.uuid4())
    # The same message redelivered, and the same change re-sent under new message ids, concurrently.
    await asyncio.gather(
        *(events.publish(failed, 3, message_id=message_id) for _ in range(4)),
        *(events.publish(failed, 3) for _ in range(4)),
    )
    await events.publish(make_job(second, S.STATE_FAILED), 2)
    received = await collect(watcher, 2)
    watcher.cancel()
    assert sorted(n.publish_job for n in received) == sorted([first, second])  # no repeat of either
    system = await wait_for(lambda: _n(listed(a.stub, meta, category=SYSTEM), 2))
    assert sorted(n.publish_job for n in system) == sorted([first, second])
    n = next(n for n in system if n.publish_job == first)
    assert n.category == SYSTEM and not n.read
    assert n.agent == "tenants/acme/agents/front-desk" and n.version == "tenants/acme/agents/front-desk/versions/3"
    assert n.error.reason == resources_pb2.PublishError.REASON_DEPLOY_UNAVAILABLE
    assert list(n.changed_sections) == ["greetings"] and n.title and n.create_time.seconds > 0
    assert n.name.startswith("tenants/acme/notifications/")
    # Another tenant sees none of it; both replicas answer the same.
    assert await listed(b.stub, md(token(["viewer"], "beta")), tenant="beta") == []
    assert [x.name for x in await listed(b.stub, meta)] == [x.name for x in system]


async def _n(coro, count):
    items = await coro
    return items if len(items) == count else None


async def _subscribed(replica, n=1):
    return replica.app.notifier.hub.subscriber_count() >= n


async def test_read_state_of_system_notifications(cluster, events, token):
    r = await cluster.start()
    meta = md(token(["viewer"]))
    await events.publish(make_job(job_name(), S.STATE_FAILED), 2)
    [n] = await wait_for(lambda: _n(listed(r.stub, meta), 1))
    watcher = r.stub.WatchNotifications(svc.WatchNotificationsRequest(parent="tenants/acme"), metadata=meta, timeout=10)
    await wait_for(lambda: _subscribed(r))
    marked = await r.stub.MarkNotificationRead(svc.MarkNotificationReadRequest(name=n.name), metadata=meta, timeout=5)
    assert marked.read and marked.name == n.name
    again = await r.stub.MarkNotificationRead(svc.MarkNotificationReadRequest(name=n.name), metadata=meta, timeout=5)
    assert again.read
    [update] = await collect(watcher, 1)  # the first read is announced once, to every watcher of the tenant
    watcher.cancel()
    assert update.name == n.name and update.read
    assert (await listed(r.stub, meta))[0].read
    assert await listed(r.stub, meta, unread_only=True) == []
    for name, code in [
        (f"tenants/acme/notifications/{uuid.uuid4()}", grpc.StatusCode.NOT_FOUND),
        ("tenants/acme/notifications/not-a-uuid", grpc.StatusCode.NOT_FOUND),
        ("tenants/acme/notices/x", grpc.StatusCode.INVALID_ARGUMENT),
        (n.name.replace("tenants/acme", "tenants/beta"), grpc.StatusCode.PERMISSION_DENIED),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await r.stub.MarkNotificationRead(svc.MarkNotificationReadRequest(name=name), metadata=meta, timeout=5)
        assert err.value.code() == code, name


async def test_maintenance_notices_show_for_every_tenant_while_current(cluster, token):
    r = await cluster.start()
    sre = md(token(["sre"], "*", "sam@speako"))
    acme, beta = md(token(["viewer"], "acme")), md(token(["viewer"], "beta"))
    now = datetime.now(UTC)
    watcher = r.stub.WatchNotifications(svc.WatchNotificationsRequest(parent="tenants/beta"), metadata=beta, timeout=15)
    await wait_for(lambda: _subscribed(r))

    async def create(title, start, end, request_id=""):
        return await r.stub.CreateMaintenanceNotice(
            svc.CreateMaintenanceNoticeRequest(
                notice=npb.MaintenanceNotice(
                    title=title, message="Publishing pauses.", start_time=ts(start), end_time=ts(end)
                ),
                request_id=request_id,
            ),
            metadata=sre,
            timeout=5,
        )

    request_id = str(uuid.uuid4())
    current = await create("Database upgrade", now - timedelta(minutes=5), now + timedelta(hours=1), request_id)
    assert current.name.startswith("notices/") and current.creator == "sam@speako"
    assert (await create("Database upgrade", now, now + timedelta(hours=1), request_id)).name == current.name
    await create("Long over", now - timedelta(days=2), now - timedelta(days=1))
    await create("Next week", now + timedelta(days=7), now + timedelta(days=8))
    soon = await create("Starting soon", now + timedelta(seconds=1.5), now + timedelta(hours=1))
    # A live watcher sees the current notice at once and the next one when it starts.
    got = await collect(watcher, 2)
    watcher.cancel()
    assert [(n.notice, n.category) for n in got] == [(current.name, MAINTENANCE), (soon.name, MAINTENANCE)]
    assert got[0].name.startswith("tenants/beta/notifications/")

    for meta, tenant in [(acme, "acme"), (beta, "beta")]:
        shown = await listed(r.stub, meta, tenant=tenant, category=MAINTENANCE)
        assert [n.notice for n in shown] == [soon.name, current.name]
        assert all(n.category == MAINTENANCE and not n.read and n.end_time.seconds for n in shown)
    acme_view = await listed(r.stub, acme, tenant="acme", category=MAINTENANCE)
    await r.stub.MarkNotificationRead(svc.MarkNotificationReadRequest(name=acme_view[1].name), metadata=acme, timeout=5)
    assert [n.read for n in await listed(r.stub, acme, tenant="acme", category=MAINTENANCE)] == [False, True]
    assert [n.read for n in await listed(r.stub, beta, tenant="beta", category=MAINTENANCE)] == [False, False]
    assert len(await listed(r.stub, acme, tenant="acme", unread_only=True)) == 1
    assert await listed(r.stub, acme, tenant="acme", category=SYSTEM) == []


async def test_maintenance_notice_refusals(cluster, token):
    r = await cluster.start()
    now = datetime.now(UTC)
    good = npb.MaintenanceNotice(title="x", start_time=ts(now), end_time=ts(now + timedelta(hours=1)))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await r.stub.CreateMaintenanceNotice(
            svc.CreateMaintenanceNoticeRequest(notice=good), metadata=md(token(["admin"])), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    bad = npb.MaintenanceNotice(title="", start_time=ts(now), end_time=ts(now - timedelta(hours=1)))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await r.stub.CreateMaintenanceNotice(
            svc.CreateMaintenanceNoticeRequest(notice=bad, request_id="nope"),
            metadata=md(token(["sre"], "*")),
            timeout=5,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = error_details_pb2.BadRequest()
    rpc_status.from_call(err.value).details[-1].Unpack(violations)
    assert {v.field for v in violations.field_violations} == {"notice.title", "notice.end_time", "request_id"}
    assert await listed(r.stub, md(token(["viewer"]))) == []


async def test_list_notifications_pages_across_categories(cluster, events, token):
    r = await cluster.start()
    meta = md(token(["viewer"]))
    sre = md(token(["sre"], "*"))
    now = datetime.now(UTC)
    for i in range(3):
        await events.publish(make_job(job_name(), S.STATE_FAILED), 2)
        await r.stub.CreateMaintenanceNotice(
            svc.CreateMaintenanceNoticeRequest(
                notice=npb.MaintenanceNotice(
                    title=f"n{i}", start_time=ts(now - timedelta(minutes=1)), end_time=ts(now + timedelta(hours=1))
                )
            ),
            metadata=sre,
            timeout=5,
        )
    everything = await wait_for(lambda: _n(listed(r.stub, meta), 6))
    pages, page_token = [], ""
    while True:
        resp = await r.stub.ListNotifications(
            svc.ListNotificationsRequest(parent="tenants/acme", page_size=4, page_token=page_token),
            metadata=meta,
            timeout=5,
        )
        pages.append(list(resp.notifications))
        page_token = resp.next_page_token
        if not page_token:
            break
    assert [len(p) for p in pages] == [4, 2]
    assert [n.name for p in pages for n in p] == [n.name for n in everything]
    times = [(n.create_time.seconds, n.create_time.nanos) for n in everything]
    assert times == sorted(times, reverse=True)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await r.stub.ListNotifications(
            svc.ListNotificationsRequest(parent="tenants/acme", category=7), metadata=meta, timeout=5
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
