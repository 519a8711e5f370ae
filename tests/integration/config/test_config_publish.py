"""Reliable publish submission: concurrency, durable request_id, the outbox on a real broker."""

from __future__ import annotations

import asyncio
import itertools
import random
import subprocess
import uuid
from collections.abc import AsyncIterator

import aio_pika
import aio_pika.abc
import grpc
import grpc.aio
import pytest

from chassis import broker
from chassis.server import GrpcApp
from chassis.settings import Settings
from speako.config.v1 import config_service_pb2 as svc
from speako.config.v1 import resources_pb2 as r
from speako.events.v1 import events_pb2
from tests.conftest import TokenFactory
from tests.integration.config.config_support import (
    TENANT,
    Client,
    client_for,
    eventually,
    start_app,
    valid_config,
)

AGENT = f"tenants/{TENANT}/agents/front-desk"


async def publish_distinct(client: Client, content: str) -> r.PublishJob:
    """Put ``content`` into the draft and publish exactly it (retrying when another writer interleaves)."""
    while True:
        draft = await client.set_config(AGENT, valid_config(content))
        try:
            return await client.publish(AGENT, etag=draft.etag)
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.ABORTED:
                raise
            await asyncio.sleep(random.uniform(0, 0.05))


async def test_fifty_concurrent_publishes_get_gap_free_increasing_numbers(client, settings, token, db):
    """Fifty callers on two replicas each write their own content and publish at once, on one agent."""
    await client.create_agent("front-desk")
    contents = [f"Greeting number {i} for {{business_name}}" for i in range(50)]
    replica = await start_app(settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{replica.port}")
    clients = [client, client_for(channel, token(["publisher"], TENANT, "bob@acme"))]
    start = asyncio.Event()

    async def edit_and_publish(i: int) -> r.PublishJob:
        await start.wait()
        caller = clients[i % 2]
        await caller.set_config(AGENT, valid_config(contents[i]))
        return await caller.publish(AGENT)

    try:
        tasks = [asyncio.create_task(edit_and_publish(i)) for i in range(50)]
        start.set()
        jobs = await asyncio.gather(*tasks)
    finally:
        await channel.close()
        await replica.stop(0.5)

    rows = await db.fetch("SELECT number, content_sha256, create_time FROM versions ORDER BY number")
    count = len(rows)
    # Gap-free from 1, increasing in commit order, and every version is new content.
    assert [row["number"] for row in rows] == list(range(1, count + 1))
    assert [row["create_time"] for row in rows] == sorted(row["create_time"] for row in rows)
    assert all(a["content_sha256"] != b["content_sha256"] for a, b in itertools.pairwise(rows))
    assert count > 1, "the publishes did not interleave with the edits"
    # Every job names an existing version whose content is one the callers wrote.
    assert {int(job.version.rsplit("/", 1)[1]) for job in jobs} <= set(range(1, count + 1))
    for number in {int(job.version.rsplit("/", 1)[1]) for job in jobs}:
        version = await client.GetVersion(svc.GetVersionRequest(name=f"{AGENT}/versions/{number}"))
        assert version.config.greetings.opening_greeting in contents
    assert len({job.name for job in jobs}) == 50
    assert (await client.GetAgent(svc.GetAgentRequest(name=AGENT))).latest_version_number == count
    assert await db.fetchval("SELECT count(*) FROM publish_requests") == 50
    print(f"50 concurrent edit+publish pairs produced versions 1..{count}")


async def test_concurrent_publishes_of_identical_content_share_one_version(client, db):
    await client.create_agent("front-desk")
    await client.set_config(AGENT, valid_config())
    jobs = await asyncio.gather(*(client.publish(AGENT) for _ in range(20)))
    assert {job.version for job in jobs} == {f"{AGENT}/versions/1"}
    assert len({job.name for job in jobs}) == 20
    assert await db.fetchval("SELECT count(*) FROM versions") == 1


async def test_request_id_is_durable_across_a_restart_and_concurrent_repeats(
    settings: Settings, token: TokenFactory, db
):
    publisher = token(["publisher"], TENANT, "alice@acme")
    app = await start_app(settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        client = client_for(channel, publisher)
        await client.create_agent("front-desk")
        await client.set_config(AGENT, valid_config())
        rid = str(uuid.uuid4())
        repeats = await asyncio.gather(*(client.publish(AGENT, request_id=rid) for _ in range(10)))
        first = repeats[0]
        assert all(job == first for job in repeats)
        # The draft moves on; a retry of the same request still answers with the first job.
        await client.set_config(AGENT, valid_config("Changed since"))
    finally:
        await channel.close()
        await app.stop(0.5)

    app = await start_app(settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        client = client_for(channel, publisher)
        again = await client.publish(AGENT, request_id=rid)
        assert again == first
        assert await db.fetchval("SELECT count(*) FROM publish_requests") == 1
        assert await db.fetchval("SELECT count(*) FROM versions") == 1
        # A new request_id is a new publish of the current draft.
        fresh = await client.publish(AGENT, request_id=str(uuid.uuid4()))
        assert fresh.version == f"{AGENT}/versions/2"
    finally:
        await channel.close()
        await app.stop(0.5)


@pytest.fixture
async def broker_connection(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractRobustConnection]:
    connection = await broker.connect(amqp_url, "config-test")
    yield connection
    await connection.close()


async def durable_queue(
    connection: aio_pika.abc.AbstractConnection, exchange: str, routing_key: str
) -> aio_pika.abc.AbstractQueue:
    """A durable test queue bound to an exchange, so nothing is missed while nobody consumes."""
    channel = await connection.channel()
    queue = await channel.declare_queue(f"config-test-{uuid.uuid4().hex[:8]}", durable=True)
    await queue.bind(exchange, routing_key)
    return queue


async def drain(
    queue: aio_pika.abc.AbstractQueue, count: int, timeout: float = 30.0
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Receive ``count`` messages (acked), failing after ``timeout`` seconds."""
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with asyncio.timeout(timeout), queue.iterator() as messages:
        async for message in messages:
            await message.ack()
            got.append(message)
            if len(got) == count:
                break
    return got


async def drain_jobs(queue: aio_pika.abc.AbstractQueue, expected: set[str], timeout: float = 30.0) -> set[str]:
    """Receive (and ack) until every expected job name was seen; duplicates are allowed."""
    seen: set[str] = set()
    async with asyncio.timeout(timeout), queue.iterator() as messages:
        async for message in messages:
            await message.ack()
            seen.add(broker.decode(message).job.name)  # type: ignore[attr-defined]
            if seen >= expected:
                break
    return seen


async def test_publish_messages_reach_the_broker_with_ids_and_trace_context(client, broker_connection, app):
    requests_queue = await durable_queue(broker_connection, broker.PUBLISH_EXCHANGE, broker.PUBLISH_REQUESTED)
    events_queue = await durable_queue(broker_connection, broker.EVENTS_EXCHANGE, "job.#")
    await client.create_agent("front-desk")
    await client.set_config(AGENT, valid_config())
    job = await client.publish(AGENT)

    [requested] = await drain(requests_queue, 1)
    [submitted] = await drain(events_queue, 1)
    for message in (requested, submitted):
        assert message.message_id and uuid.UUID(message.message_id)
        assert message.content_type == broker.CONTENT_TYPE
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        traceparent = broker.string_headers(message.headers)["traceparent"]
        # W3C: version-traceid-spanid-flags; the trace is the one of the PublishDraft call.
        assert traceparent.split("-")[1] == job.trace_id
    assert requested.message_id != submitted.message_id
    body = broker.decode(requested)
    assert isinstance(body, events_pb2.PublishRequested)
    assert body.job == job
    version = await client.GetVersion(svc.GetVersionRequest(name=job.version))
    assert body.content_sha256 == version.content_sha256
    event = broker.decode(submitted)
    assert isinstance(event, events_pb2.JobStateChanged)
    assert event.job == job and event.sequence == 1 and event.event_time == job.create_time
    assert submitted.routing_key == "job.submitted"

    # The publisher's own work queue got it too (declared by the service at start). A quorum
    # queue's reported count follows its Raft log, so it may trail the confirm for a moment.
    async def in_work_queue() -> bool:
        async with await broker_connection.channel() as channel:
            work_queue = await channel.declare_queue(broker.PUBLISH_REQUESTS_QUEUE, passive=True)
            return work_queue.declaration_result.message_count == 1

    await eventually(in_work_queue, 10)


def _close_vhost_connections(amqp_url: str) -> None:
    vhost = amqp_url.rsplit("/", 1)[1]
    subprocess.run(
        ["rabbitmqctl", "close_all_connections", "-p", vhost, "config test: simulated broker outage"],
        check=True,
        capture_output=True,
        timeout=60,
    )


async def _outbox_empty(db, timeout: float = 45.0) -> None:
    async def empty() -> bool:
        return await db.fetchval("SELECT count(*) FROM outbox") == 0

    await eventually(empty, timeout)


async def test_relay_rides_out_dropped_broker_connections_without_loss(client, app, settings, db, amqp_url):
    """Connections of the test vhost are force-closed repeatedly during a burst of publishes."""
    setup = await broker.connect(amqp_url, "config-test-setup")
    requests_queue = await durable_queue(setup, broker.PUBLISH_EXCHANGE, broker.PUBLISH_REQUESTED)
    events_queue = await durable_queue(setup, broker.EVENTS_EXCHANGE, "job.submitted")
    await setup.close()
    await client.create_agent("front-desk")

    async def burst() -> list[r.PublishJob]:
        jobs = []
        for i in range(30):
            jobs.append(await publish_distinct(client, f"Burst {i}"))
            await asyncio.sleep(0.02)
        return jobs

    async def outages() -> None:
        for _ in range(3):
            await asyncio.sleep(0.3)
            await asyncio.to_thread(_close_vhost_connections, amqp_url)

    jobs, _ = await asyncio.gather(burst(), outages())
    await _outbox_empty(db)

    reader = await broker.connect(amqp_url, "config-test-reader")
    try:
        channel = await reader.channel()
        # At-least-once: every job arrives (a re-publish after a lost confirm may duplicate one,
        # with the same message_id), so read until each was seen rather than a fixed count.
        expected = {job.name for job in jobs}
        requested_jobs = await drain_jobs(await channel.get_queue(requests_queue.name), expected)
        submitted_jobs = await drain_jobs(await channel.get_queue(events_queue.name), expected)
    finally:
        await reader.close()
    assert requested_jobs == submitted_jobs == expected


async def test_relay_keeps_rows_while_the_exchange_is_missing_then_delivers(client, app, db, amqp_url):
    """The events exchange disappears (as after a broker reset): rows wait, retried, then all arrive."""
    connection = await broker.connect(amqp_url, "config-test-admin")
    try:
        channel = await connection.channel()
        await channel.exchange_delete(broker.EVENTS_EXCHANGE)
        await client.create_agent("front-desk")
        jobs = [await publish_distinct(client, f"During the gap {i}") for i in range(5)]

        # The submissions succeeded (the outbox row is the promise); delivery waits for the exchange.
        async def retried() -> bool:
            return bool(await db.fetchval("SELECT count(*) FROM outbox WHERE attempts > 0"))

        await eventually(retried)
        pending = await db.fetchval("SELECT count(*) FROM outbox WHERE routing_key = 'job.submitted'")
        assert pending == 5

        channel = await connection.channel()
        await channel.declare_exchange(broker.EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        events_queue = await durable_queue(connection, broker.EVENTS_EXCHANGE, "job.submitted")
        submitted = await drain(events_queue, 5, timeout=45)
        assert {broker.decode(m).job.name for m in submitted} == {job.name for job in jobs}  # type: ignore[attr-defined]
        await _outbox_empty(db)
    finally:
        await connection.close()


async def test_rows_left_by_a_stopped_process_are_delivered_by_the_next(settings: Settings, token: TokenFactory, db):
    """A process stops with undelivered rows; the next one (same database) delivers them."""
    admin = await broker.connect(settings.amqp_url, "config-test-admin")
    try:
        app: GrpcApp = await start_app(settings)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
        try:
            client = client_for(channel, token(["publisher"], TENANT, "alice@acme"))
            await client.create_agent("front-desk")
            await client.set_config(AGENT, valid_config())
            admin_channel = await admin.channel()
            await admin_channel.exchange_delete(broker.EVENTS_EXCHANGE)
            job = await client.publish(AGENT)

            async def only_the_event_left() -> bool:
                return await db.fetchval("SELECT count(*) FROM outbox") == 1

            await eventually(only_the_event_left)
        finally:
            await channel.close()
            await app.stop(0.5)
        assert await db.fetchval("SELECT routing_key FROM outbox") == "job.submitted"

        # The next process re-declares the topology (exchange and the notifier's bound queue) and
        # delivers the row it inherited.
        app = await start_app(settings)
        try:
            await _outbox_empty(db)
            queue = await (await admin.channel()).get_queue(broker.EVENTS_QUEUE)
            [message] = await drain(queue, 1, timeout=45)
            assert broker.decode(message).job == job  # type: ignore[attr-defined]
        finally:
            await app.stop(0.5)
    finally:
        await admin.close()
