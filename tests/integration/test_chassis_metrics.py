"""Figures read at scrape time: the outbox backlog from the real database, and failure isolation."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from chassis import auth, broker, metrics, outbox
from chassis.server import GrpcApp
from speako.events.v1 import events_pb2
from tests.harness import free_port, scrape_metrics
from tests.integration.test_chassis_outbox import SCHEMA
from tests.integration.test_chassis_outbox import pool as outbox_pool  # noqa: F401  (fixture)


@pytest.fixture
async def serving(settings):
    """Start a GrpcApp with a metrics port; yields (app factory, scrape)."""
    port = free_port()
    apps: list[GrpcApp] = []

    def make() -> GrpcApp:
        app = GrpcApp(
            service_name="speako-test",
            settings=dataclasses.replace(settings, metrics_ports={"test": port}),
            listen_addr="127.0.0.1:0",
            policy={"/x/Y": auth.Rule(auth.Access.READ)},
        )
        apps.append(app)
        return app

    async def scrape():
        return await asyncio.to_thread(scrape_metrics, port)

    yield make, scrape
    for app in apps:
        await app.stop(0.5)


def sample(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


async def test_outbox_backlog_and_age_come_from_the_database(outbox_pool, amqp_url, database_url, serving):  # noqa: F811
    pool = outbox_pool
    make, scrape = serving
    connection = await broker.connect(amqp_url, "test")
    try:
        relay = outbox.OutboxRelay(
            pool, connection, database_url=database_url, schema=SCHEMA, service_name="speako-test"
        )
        app = make()
        app.metrics.report_outbox(relay.backlog)  # the relay itself is not running: rows stay
        await app.start()
        assert sample(await scrape(), "speako_outbox_backlog_messages") == 0
        for sequence in range(3):
            async with pool.acquire() as con, con.transaction():
                await outbox.enqueue(
                    con,
                    exchange=broker.EVENTS_EXCHANGE,
                    routing_key="job.processing",
                    message=events_pb2.JobStateChanged(sequence=sequence),
                )
        await asyncio.sleep(0.3)
        samples = await scrape()
        assert sample(samples, "speako_outbox_backlog_messages") == 3
        assert 0.3 <= sample(samples, "speako_outbox_oldest_age_seconds") < 30
    finally:
        await connection.close()


async def test_a_failing_or_slow_reader_is_left_out_and_the_rest_is_served(serving):
    make, scrape = serving
    app = make()

    async def fine():
        return [metrics.gauge("speako_fine", "A reading that works.", 7, {"kind": "ok"})]

    async def broken():
        raise ConnectionError("database is down")

    async def stuck():
        await asyncio.sleep(60)
        return []

    for read in (fine, broken, stuck):
        app.metrics.read_at_scrape(read)
    await app.start()
    samples = await scrape()
    assert sample(samples, "speako_fine", kind="ok") == 7
    assert {name for name, _ in samples if name.startswith("speako_")} == {"speako_fine"}
