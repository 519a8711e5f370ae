"""Composition root of the activation process (ActivationService + RuntimeService)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aio_pika.abc
from prometheus_client.core import Metric

from chassis import database, metrics, outbox
from chassis.backends import open_backends
from chassis.server import GrpcApp
from chassis.settings import Settings
from services.activation.calls import BusyLoopLinger, CallRecorder
from services.activation.domain.routing import RoutingTable
from services.activation.messaging import OutboxEvents
from services.activation.policy import POLICY
from services.activation.routing_sync import RoutingSync
from services.activation.service import Activation
from services.activation.servicer import ActivationServicer, RuntimeServicer
from services.activation.store import ActivationStore, CallWriter
from speako.activation.v1 import activation_service_pb2_grpc, runtime_service_pb2_grpc

SCHEMA = "activation"
SERVICE_NAME = "speako-activation"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


async def create_app(
    settings: Settings,
    listen_addr: str | None = None,
    *,
    routing_poll_interval_s: float = 0.5,
    routing_listener_check_s: float = 5.0,
    pool_max_size: int = 8,
    call_writers: int = 1,
) -> GrpcApp:
    """Build the activation app: migrations, pool, broker, routing table, servicers, background work."""
    app = GrpcApp(
        service_name=SERVICE_NAME,
        settings=settings,
        listen_addr=listen_addr or settings.activation_addr,
        policy=POLICY,
    )
    pool, connection = await open_backends(
        settings,
        service_name=SERVICE_NAME,
        schema=SCHEMA,
        migrations=[outbox.MIGRATIONS_DIR, MIGRATIONS_DIR],
        pool_max_size=pool_max_size,
    )
    try:
        relay = outbox.OutboxRelay(
            pool, connection, database_url=settings.database_url, schema=SCHEMA, service_name=SERVICE_NAME
        )
        # Events of a committed transaction go straight to this process's relay (no NOTIFY, no re-read).
        store = ActivationStore(pool, after_commit=relay.after_commit)
        table = RoutingTable()
        sync = RoutingSync(
            store,
            table,
            lambda: database.connect(settings.database_url, SCHEMA, name=f"{SERVICE_NAME}-routing"),
            poll_interval_s=routing_poll_interval_s,
            listener_check_s=routing_listener_check_s,
        )
        # RouteCall must never answer from an empty table after a restart.
        await sync.load()
        batch_sizes = app.metrics.histogram(
            "speako_activation_call_batch_size",
            "Calls pinned per group commit.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
        )
        app.metrics.gauge(
            "speako_activation_routed_numbers", "Phone numbers in this replica's routing table."
        ).set_function(lambda: len(table))

        async def active_calls() -> list[Metric]:
            count = await store.active_call_count()
            return [metrics.gauge("speako_activation_active_calls", "Calls in progress (every replica).", count)]

        app.metrics.read_at_scrape(active_calls)
        # One writer: calls arriving while a batch commits form the next batch. Each batch has a
        # fixed cost (~0.5 ms of CPU), so fewer, larger batches beat overlapping small ones, and
        # a saturated loop lets each batch gather for a few milliseconds (BusyLoopLinger).
        writers = [
            CallWriter(lambda: database.connect(settings.database_url, SCHEMA, name=f"{SERVICE_NAME}-calls"))
            for _ in range(call_writers)
        ]
        recorder = CallRecorder([w.insert for w in writers], on_batch=batch_sizes.observe, linger=BusyLoopLinger())
        activation = Activation(store, OutboxEvents(), table, recorder)
    except BaseException:
        await connection.close()
        await pool.close()
        raise

    app.add_service(
        "speako.activation.v1.ActivationService",
        lambda server: activation_service_pb2_grpc.add_ActivationServiceServicer_to_server(
            ActivationServicer(activation), server
        ),
    )
    app.add_service(
        "speako.activation.v1.RuntimeService",
        lambda server: runtime_service_pb2_grpc.add_RuntimeServiceServicer_to_server(
            RuntimeServicer(activation), server
        ),
    )
    # Benchmarks reach the use cases through the app (to serve them without the interceptors).
    app.activation = activation  # type: ignore[attr-defined]
    app.add_background("routing-sync", sync.run)
    app.add_background("call-recorder", recorder.run)
    app.add_outbox_relay(relay)
    for writer in writers:
        app.on_stop(writer.close)
    app.on_stop(lambda: _close_broker(connection))
    app.on_stop(pool.close)
    return app


async def _close_broker(connection: aio_pika.abc.AbstractRobustConnection) -> None:
    await connection.close()
    # aio-pika runs the connection's close callbacks in a task of its own after close() returns;
    # give it a moment so it does not outlive the event loop.
    await asyncio.sleep(0.05)
