"""Composition root of the config service: pool + migrations, broker, store, servicer, outbox relay."""

from __future__ import annotations

from pathlib import Path

from chassis import broker, database, outbox
from chassis.server import GrpcApp
from chassis.settings import Settings
from services.config.messaging import PublishEvents
from services.config.policy import POLICY
from services.config.servicer import ConfigServicer
from services.config.store import ConfigStore
from speako.config.v1 import config_service_pb2_grpc

SCHEMA = "config"
SERVICE_NAME = "speako-config"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


async def create_app(settings: Settings, listen_addr: str | None = None) -> GrpcApp:
    """Build the config app: migrations, pool, broker topology, servicer and the outbox relay."""
    await database.migrate(settings.database_url, SCHEMA, [outbox.MIGRATIONS_DIR, MIGRATIONS_DIR])
    pool = await database.create_pool(settings.database_url, SCHEMA, min_size=2, max_size=10, name=SERVICE_NAME)
    try:
        connection = await broker.connect(settings.amqp_url, SERVICE_NAME)
    except BaseException:
        await pool.close()
        raise
    try:
        # The relay publishes with mandatory=True: the exchanges and the publisher's queue must exist.
        async with connection.channel() as channel:
            await broker.declare_topology(channel)
    except BaseException:
        await connection.close()
        await pool.close()
        raise

    relay = outbox.OutboxRelay(
        pool, connection, database_url=settings.database_url, schema=SCHEMA, service_name=SERVICE_NAME
    )
    # Publish requests go to the broker as soon as their transaction commits (no NOTIFY hop).
    store = ConfigStore(pool, after_commit=relay.after_commit)
    servicer = ConfigServicer(store, PublishEvents(), publish_deadline_s=settings.publish_deadline_s)
    app = GrpcApp(
        service_name=SERVICE_NAME,
        settings=settings,
        listen_addr=listen_addr or settings.config_addr,
        policy=POLICY,
    )
    app.add_service(
        "speako.config.v1.ConfigService",
        lambda server: config_service_pb2_grpc.add_ConfigServiceServicer_to_server(servicer, server),
    )
    app.add_outbox_relay(relay)
    app.on_stop(connection.close)
    app.on_stop(pool.close)
    # Tests and benchmarks reach the relay through the app.
    app.relay = relay  # type: ignore[attr-defined]
    return app
