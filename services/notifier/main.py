"""Composition root of the notifier: pool + migrations, broker consumer, feed tailer, hub, servicer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from chassis import broker, database
from chassis.backends import open_backends
from chassis.server import GrpcApp
from chassis.settings import Settings, tunables_from_env
from services.notifier.domain.hub import FanoutHub
from services.notifier.feed import FeedTailer
from services.notifier.messaging import JOB_EVENTS_QUEUE, JobEventsConsumer
from services.notifier.policy import POLICY
from services.notifier.servicer import NotifierServicer, StreamOptions, add_to_server
from services.notifier.store import NotifierStore

SCHEMA = "notifier"
SERVICE_NAME = "speako-notifier"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

log = logging.getLogger("speako.notifier")


@dataclass(frozen=True)
class NotifierParts:
    """The running pieces of one notifier app (tests and benchmarks inspect them)."""

    store: NotifierStore
    hub: FanoutHub
    tailer: FeedTailer
    consumer: JobEventsConsumer
    servicer: NotifierServicer


@dataclass(frozen=True)
class NotifierOptions:
    """The notifier's own tunables (env ``SPEAKO_NOTIFIER_*``; tests pass them directly)."""

    heartbeat_s: float = 15.0
    job_wait_s: float = 30.0
    max_streams_per_tenant: int = 2000
    # Items are shared between subscribers, so a slot costs a pointer: be generous with bursts.
    subscriber_buffer: int = 1024
    replay_page_size: int = 500
    feed_poll_interval_s: float = 1.0
    feed_batch_size: int = 200
    feed_retention_s: float = 7 * 86_400.0
    prune_interval_s: float = 600.0
    consumer_prefetch: int = 64
    # Job events applied per transaction at most (as many as are waiting; see intake.BatchWriter).
    consumer_max_batch: int = 256

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifierOptions:
        """Read ``SPEAKO_NOTIFIER_<FIELD>`` overrides (e.g. SPEAKO_NOTIFIER_HEARTBEAT_S)."""
        return tunables_from_env(cls, "SPEAKO_NOTIFIER_", env)


async def create_app(
    settings: Settings, listen_addr: str | None = None, options: NotifierOptions | None = None
) -> GrpcApp:
    """Build the notifier app: migrations, pool, consumer, feed tailer, fan-out hub and servicer."""
    options = options or NotifierOptions.from_env()
    app = GrpcApp(
        service_name=SERVICE_NAME,
        settings=settings,
        listen_addr=listen_addr or settings.notifier_addr,
        policy=POLICY,
    )
    pool, connection = await open_backends(
        settings, service_name=SERVICE_NAME, schema=SCHEMA, migrations=[MIGRATIONS_DIR]
    )
    try:
        store = NotifierStore(pool)
        hub = FanoutHub(options.subscriber_buffer)
        tailer = FeedTailer(
            store,
            hub,
            lambda: database.connect(settings.database_url, SCHEMA, name=f"{SERVICE_NAME}-feed"),
            poll_interval_s=options.feed_poll_interval_s,
            batch_size=options.feed_batch_size,
        )
        # Streams must never start from position 0 of an unprimed hub.
        await tailer.prime()
        consumer = JobEventsConsumer(
            connection,
            store,
            prefetch=options.consumer_prefetch,
            observe_lag=app.metrics.consumer_lag.labels(JOB_EVENTS_QUEUE).observe,
            max_batch=options.consumer_max_batch,
            # Our own commits reach this process's watchers without LISTEN/NOTIFY or a feed read.
            commits=tailer,
        )
        await consumer.start()
    except BaseException:
        await connection.close()
        await pool.close()
        raise
    servicer = NotifierServicer(
        store,
        hub,
        tailer,
        StreamOptions(
            heartbeat_s=options.heartbeat_s,
            job_wait_s=options.job_wait_s,
            max_streams_per_tenant=options.max_streams_per_tenant,
            replay_page_size=options.replay_page_size,
        ),
    )

    async def prune() -> None:
        while True:
            try:
                dropped = await store.prune(timedelta(seconds=options.feed_retention_s))
                if dropped:
                    log.info("pruned %d feed entries older than %gs", dropped, options.feed_retention_s)
            except Exception:
                log.exception("pruning the feed failed; retrying later")
            await asyncio.sleep(options.prune_interval_s)

    async def drain() -> None:
        await consumer.stop()
        # End the streams now so clients resume on another replica instead of waiting for the grace.
        hub.close()

    app.metrics.report_queue_depths(lambda: broker.queue_depths(connection, [JOB_EVENTS_QUEUE]))
    app.add_service("speako.notifier.v1.NotifierService", lambda server: add_to_server(servicer, server))
    app.add_background("feed-tailer", tailer.run)
    app.add_background("feed-pruner", prune)
    app.on_drain(drain)
    app.on_stop(connection.close)
    app.on_stop(pool.close)
    app.notifier = NotifierParts(store, hub, tailer, consumer, servicer)  # type: ignore[attr-defined]
    return app
