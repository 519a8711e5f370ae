"""Broker adapter: the ``notifier.events`` queue's consumer, which writes the read model.

Every replica consumes the same quorum queue (competing consumers); the store makes each event
count once (dedupe on message_id, compare-and-set on sequence) and appends accepted changes to the
durable feed, from which every replica's tailer fans out to its own watchers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable

import aio_pika
import aio_pika.abc
import asyncpg
from opentelemetry.trace import SpanKind

from chassis import broker, telemetry
from services.notifier.domain.jobs import InvalidEvent, JobKey, check_event
from services.notifier.domain.notifications import SystemNotice, failed_job_notification
from services.notifier.store import ApplyOutcome, NotifierStore
from speako.config.v1 import resources_pb2
from speako.events.v1 import events_pb2

log = logging.getLogger("speako.notifier.messaging")

# Declared by the shared topology (chassis.broker), so events are routable before the notifier runs.
JOB_EVENTS_QUEUE = broker.EVENTS_QUEUE
# Events on the queue that the read model does not use (acked and dropped).
OTHER_EVENTS = (events_pb2.VersionLive, events_pb2.AgentActivated, events_pb2.AgentDeactivated)
SERVICE_NAME = "speako-notifier"
_TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)


async def declare(channel: aio_pika.abc.AbstractChannel) -> aio_pika.abc.AbstractQueue:
    """Declare the platform topology (which includes the notifier's queue) and return the queue."""
    await broker.declare_topology(channel)
    return await channel.get_queue(JOB_EVENTS_QUEUE)


class JobEventsConsumer:
    """Consumes JobStateChanged events into the read model."""

    def __init__(
        self,
        connection: aio_pika.abc.AbstractRobustConnection,
        store: NotifierStore,
        *,
        prefetch: int = 64,
        retry_for_s: float = 30.0,
    ) -> None:
        self._connection = connection
        self._store = store
        self._prefetch = prefetch
        self._retry_for_s = retry_for_s
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._tag: str | None = None
        self.applied = 0
        self.skipped = 0
        # Per-job FIFO locks: deliveries run as concurrent tasks, and without them a job's later
        # event could overtake an earlier one and make the earlier state stale (skipped).
        self._job_locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def start(self) -> None:
        """Open a channel, declare the queue and start consuming."""
        self._channel = await self._connection.channel()
        await self._channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await declare(self._channel)
        self._tag = await self._queue.consume(self.handle)

    async def stop(self) -> None:
        """Stop taking deliveries (in-flight ones finish or are redelivered) and close the channel."""
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as exc:  # the channel may already be gone at shutdown
                log.info("cancelling the consumer failed: %s", exc)
        self._tag = None
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def handle(self, incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        """Apply one delivery; undecodable or invalid events go to the dead-letter queue."""
        headers = broker.string_headers(incoming.headers)
        with telemetry.span_from_headers(
            SERVICE_NAME,
            f"{JOB_EVENTS_QUEUE} process",
            headers,
            SpanKind.CONSUMER,
            {
                "messaging.system": "rabbitmq",
                "messaging.destination.name": JOB_EVENTS_QUEUE,
                "messaging.message.id": incoming.message_id or "",
            },
        ):
            try:
                event = broker.decode(incoming)
                if isinstance(event, OTHER_EVENTS):
                    await _settle(incoming.ack())
                    return
                if not isinstance(event, events_pb2.JobStateChanged):
                    raise InvalidEvent(f"unexpected message type {incoming.type!r} on {JOB_EVENTS_QUEUE}")
                key = check_event(event.job, event.sequence)
            except (broker.UndecodableMessage, InvalidEvent) as exc:
                log.error("dead-lettering message %s: %s", incoming.message_id, exc)
                await _settle(incoming.reject(requeue=False))
                return
            failure = (
                failed_job_notification(event.job) if event.job.state == resources_pb2.PublishJob.STATE_FAILED else None
            )
            # The sequence makes a job's events idempotent even without a message_id.
            message_id = incoming.message_id or f"{key.name}#{event.sequence}"
            try:
                async with self._job_lock(key.name):
                    outcome = await self._apply_with_retry(message_id, key, event, failure)
            except _TRANSIENT as exc:
                log.warning("could not apply %s (%s); requeueing", message_id, exc)
                await _settle(incoming.nack(requeue=True))
                return
            except Exception:
                log.exception("applying %s failed; requeueing", message_id)
                await asyncio.sleep(1.0)  # no hot redelivery loop; the delivery limit ends it
                await _settle(incoming.nack(requeue=True))
                return
            if outcome is ApplyOutcome.APPLIED:
                self.applied += 1
            else:
                self.skipped += 1
            await _settle(incoming.ack())

    @contextlib.asynccontextmanager
    async def _job_lock(self, job: str) -> AsyncIterator[None]:
        # Tasks reach this point in delivery order (no await before it), and asyncio.Lock is FIFO.
        lock, users = self._job_locks.get(job, (asyncio.Lock(), 0))
        self._job_locks[job] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._job_locks[job]
            if users == 1:
                del self._job_locks[job]
            else:
                self._job_locks[job] = (lock, users - 1)

    async def _apply_with_retry(
        self, message_id: str, key: JobKey, event: events_pb2.JobStateChanged, failure: SystemNotice | None
    ) -> ApplyOutcome:
        # Ride out a short database outage in place instead of burning deliveries.
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._retry_for_s
        delay = 0.1
        while True:
            try:
                return await self._store.apply_job_event(message_id, key, event.job, event.sequence, failure)
            except _TRANSIENT:
                if loop.time() + delay > give_up:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)


async def _settle(action: Awaitable[None]) -> None:
    # A delivery received before a reconnect (or a channel closed at shutdown) cannot be settled;
    # the broker redelivers it and the dedupe makes that harmless.
    try:
        await action
    except Exception as exc:
        log.info("could not settle a delivery (%s); it will be redelivered", exc)
