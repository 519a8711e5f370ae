"""PostgreSQL and RabbitMQ faults, and a publisher paused past its ack timeout and its lease.

These restart or retune the shared servers; the ``fp`` fixture always brings them back.
"""

from __future__ import annotations

import asyncio
import re
import signal

import pytest

from tests.faults import servers
from tests.faults.checker import connect_db, describe
from tests.faults.scenario import checking

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]


async def _terminate_backends(database_url: str) -> int:
    name = database_url.rsplit("/", 1)[-1]
    con = await connect_db(database_url.rsplit("/", 1)[0] + "/postgres")
    try:
        return await con.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await con.close()


async def test_every_postgres_connection_terminated(fp):
    async with checking(fp, "pgkill") as c:
        burst = asyncio.create_task(c.burst(36, rate=12))
        killed = 0
        for _ in range(3):
            await asyncio.sleep(0.7)
            killed += await _terminate_backends(fp.database_url)
        c.fault_cleared()
        await burst
        c.notes.append(f"{killed} backends terminated in 3 rounds")
        row = await c.verdict(
            "PostgreSQL connections terminated",
            "pg_terminate_backend on every connection of the database, 3 times",
            await c.settle(),
        )
    assert row.ok, describe(row)


async def test_postgres_restarted_during_burst(fp):
    async with checking(fp, "pgrestart") as c:
        burst = asyncio.create_task(c.burst(30, rate=10))
        await asyncio.sleep(1.0)
        await servers.pg_restart()
        c.fault_cleared()
        await burst
        row = await c.verdict("PostgreSQL restarted", "pg_ctlcluster 15 main restart mid-burst", await c.settle())
    assert row.ok, describe(row)


async def test_rabbitmq_stopped_and_started_during_burst(fp):
    async with checking(fp, "rabbit") as c:
        burst = asyncio.create_task(c.burst(30, rate=10))
        await asyncio.sleep(1.0)
        await servers.rabbit_stop_app()
        await asyncio.sleep(4.0)
        await servers.rabbit_start_app()
        c.fault_cleared()
        await burst
        row = await c.verdict(
            "RabbitMQ stopped and started", "rabbitmqctl stop_app, 4 s down, start_app, mid-burst", await c.settle()
        )
    assert row.ok, describe(row)


def _erlang_int(term: str) -> int:
    match = re.search(r"\{ok,\s*(\d+)\}", term)
    assert match, term
    return int(match.group(1))


async def test_publisher_paused_past_ack_timeout_and_lease(fp):
    # RabbitMQ 3.10 has no per-queue or per-vhost consumer timeout (x-consumer-timeout came in 3.12):
    # lower the node-wide one, and the channel tick that enforces it, for channels opened from now on.
    timeout_before = _erlang_int(servers.rabbit_env("consumer_timeout"))
    tick_before = _erlang_int(servers.rabbit_env("channel_tick_interval"))
    servers.rabbit_set_env("consumer_timeout", 3000)
    servers.rabbit_set_env("channel_tick_interval", 1000)
    publisher = fp.service("publisher")
    try:
        # New consumer channels (a restarted publisher and a second replica) pick up the short timeout.
        await publisher.stop(signal.SIGTERM)
        await fp.restart("publisher")
        await fp.add_replica("publisher")
        async with checking(fp, "sigstop") as c:
            burst = asyncio.create_task(c.burst(40, rate=10))
            await asyncio.sleep(1.0)
            publisher.send(signal.SIGSTOP)
            # Past the 3 s ack timeout (+1 s tick) and the 6 s job lease: the broker takes its deliveries
            # back and the other replica takes its jobs over.
            await asyncio.sleep(10.0)
            publisher.send(signal.SIGCONT)
            c.fault_cleared()
            await burst
            row = await c.verdict(
                "Publisher paused past ack timeout",
                "SIGSTOP 10 s (ack timeout 3 s, lease 6 s) with a second replica, then SIGCONT",
                await c.settle(),
            )
    finally:
        publisher.send(signal.SIGCONT)
        servers.rabbit_set_env("consumer_timeout", timeout_before)
        servers.rabbit_set_env("channel_tick_interval", tick_before)
        # Its channels still carry the short timeout: restart it with the node's own values.
        await publisher.stop(signal.SIGTERM)
        await fp.restart("publisher")
    assert row.ok, describe(row)
