"""Composition root of the config service: pool + migrations, broker, store, servicer, outbox relay."""

from __future__ import annotations

from pathlib import Path

from chassis import outbox
from chassis.backends import open_backends
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
    # The relay publishes with mandatory=True: the topology open_backends declares must exist.
    pool, connection = await open_backends(
        settings, service_name=SERVICE_NAME, schema=SCHEMA, migrations=[outbox.MIGRATIONS_DIR, MIGRATIONS_DIR]
    )

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
