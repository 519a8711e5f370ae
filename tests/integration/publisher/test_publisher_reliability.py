"""Poison messages, resumed leases, two replicas and graceful shutdown of the publisher."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from dataclasses import replace

import aio_pika
import asyncpg
import grpc

from chassis import broker, database
from services.publisher import codec
from services.publisher.domain import JobState
from services.publisher.pipeline import utcnow
from services.publisher.store import SCHEMA, JobStore
from speako.config.v1 import resources_pb2 as config_pb2
from tests.integration.publisher.publisher_support import (
    FAST,
    Outcome,
    World,
    make_request,
    make_version,
    serve_runtime,
)


async def test_publisher_poison_messages_reach_the_dead_letter_queue_and_consumption_goes_on(world: World) -> None:
    await world.start_publisher()
    junk = aio_pika.Message(
        body=b"\xff\xfe not protobuf",
        content_type=broker.CONTENT_TYPE,
        type="speako.events.v1.NoSuchMessage",
        message_id=str(uuid.uuid4()),
    )
    not_protobuf = aio_pika.Message(body=b"{}", content_type="application/json", message_id=str(uuid.uuid4()))
    # Readable job name, unusable version: the job itself fails with REASON_INTERNAL.
    broken = make_request(make_version(1))
    broken.job.version = "tenants/acme/agents/front-desk/versions/zero"
    await world.harness.publish(raw=junk)
    await world.harness.publish(raw=not_protobuf)
    await world.harness.publish(broken)
    good = make_request(world.config.add(make_version(1)))
    await world.harness.publish(good)

    assert (await world.harness.wait_terminal(good.job.name)).state == "PUBLISHED"
    row = await world.harness.wait_terminal(broken.job.name)
    assert (row.state, row.error_reason, row.sequence) == ("FAILED", "INTERNAL", 2)
    assert "job.version" in row.error_message
    [failed] = await world.harness.wait_events(broken.job.name, 1)
    assert failed.job.error.reason == config_pb2.PublishError.REASON_INTERNAL

    async def all_dead_lettered() -> bool:
        return await world.harness.dead_letters() == 3

    await world.harness.wait_for(all_dead_lettered, 20, "three dead letters")
    # Redeliveries of the broken request never re-announced its job.
    assert [e.sequence for e in world.harness.events_for(broken.job.name)] == [2]


async def test_publisher_resumes_a_job_whose_lease_expired(world: World) -> None:
    version = world.config.add(make_version(1))
    stuck = make_request(version)
    other = make_request(world.config.add(make_version(1, agent="tenants/acme/agents/other")))
    await world.start_publisher()
    # Rows as a crashed replica left them: PROCESSING after one attempt, one lease expired, one live.
    con = await asyncpg.connect(world.settings.database_url)
    try:
        for request, expires_in_s in ((stuck, -1.0), (other, 3600.0)):
            await con.execute(
                "INSERT INTO publisher.jobs (name, agent, version, content_sha256, state, attempts, create_time, "
                "update_time, deadline, sequence, lease_owner, lease_expires) "
                "VALUES ($1, $2, $3, $4, 'PROCESSING', 1, now(), now(), now() + interval '1 minute', 2, "
                "'crashed-replica', now() + make_interval(secs => $5))",
                request.job.name,
                request.job.name.rsplit("/publishJobs/", 1)[0],
                request.job.version,
                request.content_sha256,
                expires_in_s,
            )
        row = await world.harness.wait_terminal(stuck.job.name)
        assert (row.state, row.attempts, row.sequence, row.lease_owner) == ("PUBLISHED", 2, 3, None)
        [published] = await world.harness.wait_events(stuck.job.name, 1)
        assert published.sequence == 3

        # A live lease is respected: nobody touches that job until it expires.
        await asyncio.sleep(1.0)
        held = await world.harness.job(other.job.name)
        assert held is not None and (held.state, held.lease_owner) == ("PROCESSING", "crashed-replica")
        assert other.job.version not in [v for v, _ in world.runtime.calls]
        await con.execute(
            "UPDATE publisher.jobs SET lease_expires = now() - interval '1 second' WHERE name = $1", other.job.name
        )
        assert (await world.harness.wait_terminal(other.job.name)).state == "PUBLISHED"
    finally:
        await con.close()


async def test_publisher_sweeper_times_out_an_abandoned_overdue_job(world: World) -> None:
    version = world.config.add(make_version(1))
    request = make_request(version)
    await world.start_publisher()
    con = await asyncpg.connect(world.settings.database_url)
    try:
        await con.execute(
            "INSERT INTO publisher.jobs (name, agent, version, state, attempts, create_time, update_time, "
            "deadline, sequence, lease_owner, lease_expires) VALUES ($1, $2, $3, 'PROCESSING', 2, now(), now(), "
            "now() - interval '1 second', 2, 'crashed-replica', now() - interval '1 second')",
            request.job.name,
            request.job.name.rsplit("/publishJobs/", 1)[0],
            request.job.version,
        )
    finally:
        await con.close()
    row = await world.harness.wait_terminal(request.job.name)
    assert (row.state, row.error_reason, row.attempts, row.sequence) == ("FAILED", "TIMEOUT", 2, 3)
    assert world.runtime.calls == []


async def test_publisher_two_replicas_share_a_burst_and_never_work_one_job_twice(world: World) -> None:
    world.runtime.default = Outcome(delay_s=0.05)
    options = replace(FAST, workers=4, prefetch=4)
    servers = [await serve_runtime(world.runtime, tag) for tag in ("a", "b")]
    for _, port in servers:
        await world.start_publisher(options, runtime_addr=f"127.0.0.1:{port}")
    requests = [
        make_request(world.config.add(make_version(1, agent=f"tenants/acme/agents/agent-{i}"))) for i in range(40)
    ]
    for request in requests:
        await world.harness.publish(request)

    for request in requests:
        row = await world.harness.wait_terminal(request.job.name, timeout=30)
        assert (row.state, row.attempts) == ("PUBLISHED", 1)
    assert world.runtime.max_in_flight_per_version == 1
    assert len(world.runtime.calls) == 40 and len(world.runtime.applied) == 40
    # Each replica dials its own endpoint of the fake runtime.
    assert set(world.runtime.endpoints) == {"a", "b"}, "both replicas deployed"
    for server, _ in servers:
        await server.stop(0)
    for request in requests:
        events = await world.harness.wait_events(request.job.name, 2)
        assert sorted(e.sequence for e in events) == [2, 3]  # arrival order is not guaranteed


async def test_publisher_graceful_shutdown_hands_jobs_back(world: World) -> None:
    world.runtime.default = Outcome(delay_s=0.8)
    first = await world.start_publisher(replace(FAST, workers=2))
    requests = [
        make_request(world.config.add(make_version(1, agent=f"tenants/acme/agents/agent-{i}"))) for i in range(6)
    ]
    for request in requests:
        await world.harness.publish(request)

    async def two_processing() -> bool:
        rows = await world.harness.jobs()
        return sum(r.state == "PROCESSING" for r in rows) == 2

    await world.harness.wait_for(two_processing, 10, "two jobs in progress")
    world.apps.remove(first)
    await first.stop(0.1)
    rows = await world.harness.jobs()
    assert all(r.lease_owner is None for r in rows), "leases were handed back"
    states = {r.name: r.state for r in rows}

    await world.start_publisher()
    for request in requests:
        assert (await world.harness.wait_terminal(request.job.name)).state == "PUBLISHED"
    assert sum(s == "PUBLISHED" for s in states.values()) <= 2
    assert len(world.runtime.applied) == 6


async def test_publisher_config_errors_other_than_transient_fail_fast(world: World) -> None:
    version = world.config.add(make_version(1))
    world.config.script[version.name] = [Outcome(grpc.StatusCode.PERMISSION_DENIED, "no service role")]
    request = make_request(version)
    await world.start_publisher()
    await world.harness.publish(request)
    row = await world.harness.wait_terminal(request.job.name)
    assert (row.state, row.error_reason, row.attempts) == ("FAILED", "INTERNAL", 0)
    assert "PERMISSION_DENIED" in row.error_message
    assert world.runtime.calls == []


async def test_publisher_rides_out_dropped_broker_connections_during_a_burst(world: World) -> None:
    # Slow enough that deploys and their events are still under way when the connections drop.
    world.runtime.default = Outcome(delay_s=0.5)
    await world.start_publisher(replace(FAST, workers=4, prefetch=4))
    burst = [make_request(world.config.add(make_version(1, agent=f"tenants/acme/agents/burst-{i}"))) for i in range(40)]
    for request in burst:
        await world.harness.publish(request)
    await world.harness.wait_for(lambda: len(world.runtime.applied) >= 3, 15, "the burst under way")

    # Kill every connection of this test's vhost on the broker side (the shared broker keeps
    # running): the publisher's consumer and relay must reconnect and carry on.
    vhost = world.settings.amqp_url.rsplit("/", 1)[1]
    await asyncio.to_thread(
        subprocess.run,
        ["rabbitmqctl", "close_all_connections", "-p", vhost, "publisher test: connection dropped"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    unfinished_at_drop = [r for r in await world.harness.jobs() if r.state not in ("PUBLISHED", "FAILED")]
    later = [make_request(world.config.add(make_version(1, agent=f"tenants/acme/agents/later-{i}"))) for i in range(5)]
    connection = await aio_pika.connect(world.settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(broker.PUBLISH_EXCHANGE)
        for request in later:
            await exchange.publish(broker.encode(request), routing_key=broker.PUBLISH_REQUESTED, mandatory=True)
        for request in burst + later:
            row = await world.harness.wait_terminal(request.job.name, timeout=40)
            assert (row.state, row.sequence) == ("PUBLISHED", 3)
        assert unfinished_at_drop, "the drop hit the burst"
        assert sorted(d.version for d in world.runtime.applied) == sorted(r.job.version for r in burst + later)
        # The robust connection restored exactly one consumer, and the queue is drained.
        queue = await channel.declare_queue(broker.PUBLISH_REQUESTS_QUEUE, passive=True)
        assert queue.declaration_result.consumer_count == 1

        con = await asyncpg.connect(world.settings.database_url)
        try:
            await world.harness.wait_for(
                lambda: con.fetchval("SELECT count(*) = 0 FROM publisher.outbox"), 20, "the outbox to drain"
            )
        finally:
            await con.close()
    finally:
        await connection.close()


async def test_publisher_job_claimed_as_it_is_accepted_is_never_claimed_by_another_replica(world: World) -> None:
    await world.start_publisher()  # migrates, and relays the events written below
    request = make_request(world.config.add(make_version(1)))
    job = codec.parse_request(request, now=utcnow(), default_deadline_s=60)
    processing = job.advance(JobState.PROCESSING, utcnow())
    pool = await database.create_pool(world.settings.database_url, SCHEMA)
    store = JobStore(pool)
    try:
        # Two replicas accept two copies of the request (different deliveries) at once.
        async def accept(message_id: str, owner: str) -> tuple[bool, bool]:
            async with store.statement() as con:
                return await store.intake(con, message_id, processing, {}, owner=owner, lease_s=60)

        results = await asyncio.gather(accept("delivery-a", "replica-a"), accept("delivery-b", "replica-b"))
        assert sorted(results) == [(True, False), (True, True)]
        winner = "replica-a" if results[0] == (True, True) else "replica-b"
        async with store.statement() as con:
            # A repeat of a delivery is a duplicate; the job stays leased to the winner.
            assert await store.intake(con, "delivery-a", processing, {}, owner="replica-c", lease_s=60) == (
                False,
                False,
            )
        async with store.transaction() as con:
            assert await store.claim(con, "replica-c", 60, limit=10) == []
        row = await world.harness.job(job.name)
        assert row is not None and (row.state, row.sequence, row.lease_owner) == ("PROCESSING", 2, winner)
        [event] = await world.harness.wait_events(job.name, 1)
        assert (event.sequence, event.job.state) == (2, config_pb2.PublishJob.STATE_PROCESSING)
    finally:
        await pool.close()
