"""Composition root of the publisher process: consumer, job pipeline, sweeper, outbox relay."""

from __future__ import annotations

from pathlib import Path

from chassis import broker, clients, outbox
from chassis.backends import open_backends
from chassis.server import GrpcApp
from chassis.settings import Settings
from services.publisher.clients import GrpcRuntime, GrpcVersionSource
from services.publisher.messaging import PublishRequestConsumer
from services.publisher.metrics import PipelineMetrics
from services.publisher.options import PipelineOptions
from services.publisher.pipeline import Pipeline, utcnow
from services.publisher.policy import POLICY
from services.publisher.store import SCHEMA, JobStore

SERVICE_NAME = "speako-publisher"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


async def create_app(
    settings: Settings, listen_addr: str | None = None, *, options: PipelineOptions | None = None
) -> GrpcApp:
    """Build the publisher app: migrations, pool, broker, consumer, pipeline and relay."""
    options = options or PipelineOptions.from_env()
    # Workers, heartbeats, the consumer, the sweeper and the relay each hold a connection briefly.
    pool, connection = await open_backends(
        settings,
        service_name=SERVICE_NAME,
        schema=SCHEMA,
        migrations=[outbox.MIGRATIONS_DIR, MIGRATIONS_DIR],
        pool_max_size=options.db_pool_size,
    )

    relay = outbox.OutboxRelay(
        pool, connection, database_url=settings.database_url, schema=SCHEMA, service_name=SERVICE_NAME
    )
    # Events go to the broker as soon as their statement commits (no NOTIFY hop, no re-read).
    store = JobStore(pool, after_commit=relay.after_commit)
    config_client = clients.ServiceClient(settings.config_addr, settings, caller=SERVICE_NAME)
    runtime_client = clients.ServiceClient(settings.runtime_addr, settings, caller=SERVICE_NAME)
    app = GrpcApp(
        service_name=SERVICE_NAME,
        settings=settings,
        listen_addr=listen_addr or settings.publisher_addr,
        policy=POLICY,
    )
    pipeline = Pipeline(
        store,
        GrpcVersionSource(config_client),
        GrpcRuntime(runtime_client),
        options,
        service_name=SERVICE_NAME,
        metrics=PipelineMetrics(app.metrics),
    )
    consumer = PublishRequestConsumer(
        connection,
        store,
        prefetch=options.prefetch,
        default_deadline_s=settings.publish_deadline_s,
        on_new_job=pipeline.wake,
        clock=utcnow,
        service_name=SERVICE_NAME,
        observe_lag=app.metrics.consumer_lag.labels(broker.PUBLISH_REQUESTS_QUEUE).observe,
        on_job_finished=pipeline.metrics.finished,
        slots=pipeline,
    )

    app.metrics.report_queue_depths(lambda: broker.queue_depths(connection, [broker.PUBLISH_REQUESTS_QUEUE]))

    async def consume() -> None:
        await consumer.start()

    async def drain() -> None:
        # Intake stops first; jobs in hand get the grace period, then go back to other replicas.
        await consumer.stop(settings.shutdown_grace_s)
        await pipeline.drain(settings.shutdown_grace_s)

    async def close_channels() -> None:
        await config_client.close()
        await runtime_client.close()

    app.add_background("publish-requests", consume)
    app.add_background("job-dispatcher", pipeline.run)
    app.add_background("job-sweeper", pipeline.sweep)
    app.add_outbox_relay(relay)
    app.on_drain(drain)
    app.on_stop(close_channels)
    app.on_stop(connection.close)
    app.on_stop(pool.close)
    return app
