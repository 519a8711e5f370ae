"""Migrations, broker topology and the outbox relay against the real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from chassis import broker, database, outbox
from speako.events.v1 import events_pb2

SCHEMA = "outboxtest"


@pytest.fixture
async def pool(database_url):
    await database.migrate(database_url, SCHEMA, [outbox.MIGRATIONS_DIR])
    pool = await database.create_pool(database_url, SCHEMA)
    yield pool
    await pool.close()


@pytest.fixture
async def connection(amqp_url):
    conn = await broker.connect(amqp_url, "test")
    channel = await conn.channel()
    await broker.declare_topology(channel)
    yield conn
    await conn.close()


async def test_two_replicas_migrating_at_once_apply_each_file_once(database_url):
    results = await asyncio.gather(*(database.migrate(database_url, SCHEMA, [outbox.MIGRATIONS_DIR]) for _ in range(3)))
    files = sorted(p.name for p in outbox.MIGRATIONS_DIR.glob("*.sql"))
    assert sorted(len(r) for r in results) == [0, 0, len(files)]
    assert sorted(max(results, key=len)) == [f"outbox/{f}" for f in files]


async def _bound_queue(conn, routing_key="job.#"):
    channel = await conn.channel()
    queue = await channel.declare_queue("", exclusive=True)
    await queue.bind(broker.EVENTS_EXCHANGE, routing_key)
    return queue


async def _write(pool, n, start=0):
    ids = []
    for i in range(start, start + n):
        async with pool.acquire() as con, con.transaction():
            event = events_pb2.JobStateChanged(sequence=i)
            ids.append(
                await outbox.enqueue(con, exchange=broker.EVENTS_EXCHANGE, routing_key="job.processing", message=event)
            )
    return ids


async def _receive(queue, n, timeout=10.0):
    got = []
    async with queue.iterator() as it:
        async with asyncio.timeout(timeout):
            async for message in it:
                await message.ack()
                got.append(message)
                if len(got) == n:
                    break
    return got


async def test_relay_publishes_committed_rows_with_ids_types_and_trace_headers(pool, connection, database_url):
    queue = await _bound_queue(connection)
    relay = outbox.OutboxRelay(pool, connection, database_url=database_url, schema=SCHEMA, service_name="speako-test")
    task = asyncio.create_task(relay.run())
    try:
        ids = await _write(pool, 20)
        got = await _receive(queue, 20)
        # Rows are deleted when the relay's transaction commits, just after the confirms.
        async with asyncio.timeout(10):
            while await pool.fetchval("SELECT count(*) FROM outbox"):  # noqa: ASYNC110 (polls the database)
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert sorted(m.message_id for m in got) == sorted(ids)
    decoded = broker.decode(got[0])
    assert isinstance(decoded, events_pb2.JobStateChanged)
    assert got[0].delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert "traceparent" in got[0].headers


async def test_row_committed_out_of_id_order_is_not_skipped(pool, connection, database_url):
    queue = await _bound_queue(connection)
    relay = outbox.OutboxRelay(
        pool, connection, database_url=database_url, schema=SCHEMA, service_name="speako-test", poll_interval_s=0.2
    )
    slow = await pool.acquire()
    tx = slow.transaction()
    await tx.start()
    early_id = await outbox.enqueue(
        slow, exchange=broker.EVENTS_EXCHANGE, routing_key="job.failed", message=events_pb2.JobStateChanged(sequence=1)
    )
    task = asyncio.create_task(relay.run())
    try:
        later = await _write(pool, 3)  # higher ids, committed first
        first = await _receive(queue, 3)
        assert sorted(m.message_id for m in first) == sorted(later)
        await tx.commit()
        await pool.release(slow)
        rest = await _receive(queue, 1)
    finally:
        task.cancel()
    assert rest[0].message_id == early_id


async def test_unroutable_message_stays_in_outbox(pool, connection, database_url):
    relay = outbox.OutboxRelay(pool, connection, database_url=database_url, schema=SCHEMA, service_name="speako-test")
    async with pool.acquire() as con, con.transaction():
        await outbox.enqueue(
            con, exchange=broker.EVENTS_EXCHANGE, routing_key="nobody.listens", message=events_pb2.JobStateChanged()
        )
    with pytest.raises(RuntimeError):
        await relay.drain_once()
    async with pool.acquire() as con:
        row = await con.fetchrow("SELECT attempts, last_error, next_attempt_at > created_at AS waiting FROM outbox")
    assert row["attempts"] == 1 and row["last_error"] and row["waiting"]


async def test_a_refused_row_does_not_hold_back_the_rows_behind_it(pool, connection, database_url):
    queue = await _bound_queue(connection)
    relay = outbox.OutboxRelay(
        pool, connection, database_url=database_url, schema=SCHEMA, service_name="speako-test", batch_size=1
    )
    async with pool.acquire() as con, con.transaction():
        await outbox.enqueue(
            con, exchange=broker.EVENTS_EXCHANGE, routing_key="nobody.listens", message=events_pb2.JobStateChanged()
        )
    with pytest.raises(RuntimeError):
        await relay.drain_once()
    later = await _write(pool, 1)
    assert await relay.drain_once() == 1
    assert [m.message_id for m in await _receive(queue, 1)] == later


async def test_every_event_key_of_the_design_is_routable(connection):
    channel = await connection.channel(on_return_raises=True)
    exchange = await channel.get_exchange(broker.EVENTS_EXCHANGE)
    for key in (
        "job.submitted",
        "job.processing",
        "job.published",
        "job.failed",
        "job.superseded",
        "version.live",
        "agent.activated",
        "agent.deactivated",
    ):
        await exchange.publish(broker.encode(events_pb2.JobStateChanged()), routing_key=key, timeout=5)


async def test_relay_rides_out_connections_closed_by_the_broker(pool, connection, database_url, amqp_url):
    checker = await broker.connect(amqp_url, "checker")
    channel = await checker.channel()
    queue = await channel.declare_queue("checker", durable=True)
    await queue.bind(broker.EVENTS_EXCHANGE, "job.#")
    relay = outbox.OutboxRelay(
        pool, connection, database_url=database_url, schema=SCHEMA, service_name="speako-test", poll_interval_s=0.2
    )
    task = asyncio.create_task(relay.run())
    vhost = amqp_url.rsplit("/", 1)[1]
    try:
        first = await _write(pool, 5)
        assert len(await _receive(queue, 5)) == 5
        # The broker closes every connection of the vhost (as on a node restart).
        proc = await asyncio.create_subprocess_exec(
            "rabbitmqctl",
            "close_all_connections",
            "-p",
            vhost,
            "fault injected by test",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert await proc.wait() == 0
        later = await _write(pool, 5, start=5)
        checker2 = await broker.connect(amqp_url, "checker2")
        queue2 = await (await checker2.channel()).get_queue("checker", ensure=True)
        got = await _receive(queue2, 5, timeout=30)
        await checker2.close()
        # The relay's failed rounds during the outage left no channel for the reconnect to reopen:
        # the fixture's and the relay's one for speako.events.
        open_channels = _open_on_the_broker(connection)
    finally:
        task.cancel()
        await checker.close()
    assert set(first).isdisjoint(m.message_id for m in got)
    assert sorted(m.message_id for m in got) == sorted(later)
    assert open_channels == 2


async def test_rows_handed_over_at_commit_are_published_without_notify_or_poll(pool, connection, database_url):
    queue = await _bound_queue(connection)
    # A poll an hour away and no NOTIFY: only the hand-over can publish these rows in time.
    relay = outbox.OutboxRelay(
        pool, connection, database_url=database_url, schema=SCHEMA, service_name="speako-test", poll_interval_s=3600
    )
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.3)  # the relay's first drain (empty) is behind it
        async with relay.after_commit(), pool.acquire() as con, con.transaction():
            kept = await outbox.enqueue(
                con, exchange=broker.EVENTS_EXCHANGE, routing_key="job.published", message=events_pb2.JobStateChanged()
            )
        with pytest.raises(RuntimeError, match="rolled back"):
            async with relay.after_commit(), pool.acquire() as con, con.transaction():
                await outbox.enqueue(
                    con, exchange=broker.EVENTS_EXCHANGE, routing_key="job.failed", message=events_pb2.JobStateChanged()
                )
                raise RuntimeError("rolled back")
        got = await _receive(queue, 1)
        async with asyncio.timeout(10):
            while await pool.fetchval("SELECT count(*) FROM outbox"):  # noqa: ASYNC110 (polls the database)
                await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await _receive(queue, 1, timeout=0.5)  # the rolled-back row was never published
    finally:
        task.cancel()
    assert [m.message_id for m in got] == [kept]
    assert relay.published == 1


async def test_a_handed_over_row_the_broker_refuses_is_left_to_the_drain(pool, connection, database_url):
    relay = outbox.OutboxRelay(
        pool, connection, database_url=database_url, schema=SCHEMA, service_name="speako-test", poll_interval_s=3600
    )
    async with relay.after_commit(), pool.acquire() as con, con.transaction():
        await outbox.enqueue(
            con, exchange=broker.EVENTS_EXCHANGE, routing_key="nobody.listens", message=events_pb2.JobStateChanged()
        )
    # In hand, the drain skips the row; once the direct publish failed, the drain owns it.
    assert await relay.drain_once() == 0
    with pytest.raises(RuntimeError):
        await relay.flush_local()
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1
    with pytest.raises(RuntimeError):
        await relay.drain_once()
    assert await pool.fetchval("SELECT attempts FROM outbox") == 1


async def test_a_task_started_in_a_hand_over_block_writes_for_the_drain_once_the_block_is_over(
    pool, connection, database_url
):
    relay = outbox.OutboxRelay(
        pool, connection, database_url=database_url, schema=SCHEMA, service_name="speako-test", poll_interval_s=3600
    )
    go = asyncio.Event()

    async def later() -> None:
        await go.wait()
        async with pool.acquire() as con, con.transaction():
            await outbox.enqueue(
                con, exchange=broker.EVENTS_EXCHANGE, routing_key="job.published", message=events_pb2.JobStateChanged()
            )

    async with relay.after_commit():
        task = asyncio.create_task(later())  # inherits the block's context
    go.set()
    await task
    # Not in hand (nothing would flush it), so the drain publishes it.
    assert await relay.drain_once() == 1
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


def _open_on_the_broker(connection) -> int:
    """Channels open on the AMQP connection itself (a closed aio-pika wrapper may hide a live one)."""
    return len(connection.transport.connection.channels)


class _ChannelSpy:
    """The real connection, recording the channels the relay asks it for."""

    def __init__(self, connection):
        self._connection = connection
        self.opened = []

    def channel(self, **kwargs):
        channel = self._connection.channel(**kwargs)
        self.opened.append(channel)
        return channel

    def open_on_the_broker(self) -> int:
        return _open_on_the_broker(self._connection)


async def _hand_over(relay, pool, rows):
    """Commit (exchange, routing_key) rows in one transaction handed to the relay; their message ids."""
    messages = [
        outbox.Outgoing.of(exchange=exchange, routing_key=key, message=events_pb2.JobStateChanged(sequence=i))
        for i, (exchange, key) in enumerate(rows)
    ]
    async with relay.after_commit(), pool.acquire() as con, con.transaction():
        await outbox.enqueue_all(con, messages)
    return [m.message_id for m in messages]


async def test_a_round_opens_one_channel_per_exchange_and_keeps_its_order(pool, connection, database_url):
    queue = await _bound_queue(connection)
    spy = _ChannelSpy(connection)
    relay = outbox.OutboxRelay(pool, spy, database_url=database_url, schema=SCHEMA, service_name="speako-test")
    sent = await _hand_over(relay, pool, [(broker.EVENTS_EXCHANGE, "job.processing")] * 20)
    assert await relay.flush_local() == 20
    got = await _receive(queue, 20)
    assert len(spy.opened) == 1
    assert [m.message_id for m in got] == sent
    sent = await _hand_over(relay, pool, [(broker.EVENTS_EXCHANGE, "job.processing")] * 5)
    assert await relay.flush_local() == 5
    assert len(spy.opened) == 1  # the next round reuses it


async def test_a_missing_exchange_does_not_abort_the_rows_for_the_others(pool, connection, database_url):
    queue = await _bound_queue(connection)
    spy = _ChannelSpy(connection)
    relay = outbox.OutboxRelay(pool, spy, database_url=database_url, schema=SCHEMA, service_name="speako-test")
    baseline = spy.open_on_the_broker()
    good = [(broker.EVENTS_EXCHANGE, "job.processing")] * 10
    missing = [("outboxtest.no-such-exchange", "job.processing")] * 3
    for _ in range(3):  # first use, then with the good exchange's channel already open
        ids = await _hand_over(relay, pool, [*good[:5], *missing, *good[5:]])
        with pytest.raises(RuntimeError, match="3 outbox message"):
            await relay.flush_local()
        assert sorted(m.message_id for m in await _receive(queue, 10)) == sorted(ids[:5] + ids[8:])
        left = await pool.fetch("SELECT message_id::text AS id FROM outbox")
        assert sorted(r["id"] for r in left) == sorted(ids[5:8])
        await pool.execute("DELETE FROM outbox")
        # The rows waiting for the missing exchange shared one attempt (and its 404).
        assert len(spy.opened) == 2
        del spy.opened[1]
    # The channels that asked for the missing exchange were closed, not left to reopen themselves.
    assert spy.open_on_the_broker() == baseline + 1
    await relay._reset_channels()
    await asyncio.sleep(0.5)
    assert spy.open_on_the_broker() == baseline


async def test_a_channel_closed_while_the_reconnect_restores_it_stays_closed(pool, database_url, amqp_url):
    connection = await aio_pika.connect_robust(amqp_url, reconnect_interval=0.3)
    try:
        relay = outbox.OutboxRelay(
            pool, connection, database_url=database_url, schema=SCHEMA, service_name="speako-test"
        )
        await relay._exchange(broker.EVENTS_EXCHANGE)
        stale, _ = relay._publishing[broker.EVENTS_EXCHANGE]
        dropped = connection.transport
        restore = stale.reopen

        async def reopen_under_a_round():
            if connection.transport is dropped or not connection.connected.is_set():
                return await restore()
            # A round of the relay lands while the reconnect restores its channel (closed until then):
            # the relay closes it and opens another, then the restore finishes reopening it.
            round_ = asyncio.ensure_future(relay._exchange(broker.EVENTS_EXCHANGE))
            await asyncio.sleep(0)
            await restore()
            await round_

        stale.reopen = reopen_under_a_round
        await connection.transport.connection.close(ConnectionError("dropped by the test"))
        async with asyncio.timeout(10):
            while relay._publishing.get(broker.EVENTS_EXCHANGE, (stale,))[0] is stale:  # noqa: ASYNC110 (polls the relay)
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert stale.is_closed
        assert _open_on_the_broker(connection) == 1  # the relay's new one only
    finally:
        await connection.close()
