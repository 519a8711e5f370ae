"""Broker adapter: the ``notifier.events`` queue's consumer, which writes the read model.

Every replica consumes the same quorum queue (competing consumers); the store makes each event
count once (dedupe on message_id, compare-and-set on sequence) and appends accepted changes to the
durable feed, from which every replica's tailer fans out to its own watchers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aio_pika.abc
import asyncpg

from chassis import broker
from services.notifier.domain.jobs import InvalidEvent, check_event
from services.notifier.domain.notifications import failed_job_notification
from services.notifier.intake import BatchWriter, CommitListener
from services.notifier.store import ApplyOutcome, JobChange, NotifierStore
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


_IN_FLIGHT, _ACKABLE, _SETTLED = 0, 1, 2


class AckBatcher:
    """Acks deliveries whose effect is committed, many per ``basic.ack`` frame where that is safe.

    ``basic.ack multiple`` on tag T settles every unsettled delivery up to T on the channel, so it
    is sent only up to the first delivery still in flight (applying, or about to be nacked);
    deliveries ready after such a one are acked one by one. Acks are sent at the end of the event
    loop iteration that readied them, so one committed batch costs one frame instead of one each.
    """

    def __init__(self) -> None:
        self._channel: object | None = None
        # Deliveries of the current channel in delivery-tag order: [tag, message, state].
        self._open: collections.deque[list[Any]] = collections.deque()
        self._by_tag: dict[int, list[Any]] = {}
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    def received(self, incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        """Track a delivery from its arrival (call before any await)."""
        try:
            channel: object = incoming.channel
        except Exception:  # closed already: it will be redelivered
            return
        if channel is not self._channel:
            # A new channel (after a reconnect): the old one's deliveries can no longer be acked.
            self._channel = channel
            self._open.clear()
            self._by_tag.clear()
        tag = incoming.delivery_tag
        if tag is not None:
            entry = [tag, incoming, _IN_FLIGHT]
            self._open.append(entry)
            self._by_tag[tag] = entry

    def ack(self, incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        """Ack a delivery (its effect is committed) soon, together with its neighbours."""
        entry = self._entry(incoming)
        if entry is None:
            self._spawn(incoming.ack())
            return
        entry[2] = _ACKABLE
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def settle(self, incoming: aio_pika.abc.AbstractIncomingMessage, action: Awaitable[None]) -> None:
        """Reject or nack a delivery on its own (``action``), then stop tracking it."""
        await _settle(action)
        self.settled(incoming)

    def settled(self, incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        """A delivery was rejected or nacked on its own (after that frame was sent)."""
        entry = self._entry(incoming)
        if entry is not None:
            entry[2] = _SETTLED

    async def close(self) -> None:
        """Send what is ready and wait for the frames to be written."""
        self._flush()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _entry(self, incoming: aio_pika.abc.AbstractIncomingMessage) -> list[Any] | None:
        entry = self._by_tag.get(incoming.delivery_tag or -1)
        return entry if entry is not None and entry[1] is incoming else None

    def _flush(self) -> None:
        self._scheduled = False
        last = None
        while self._open and self._open[0][2] != _IN_FLIGHT:
            entry = self._open.popleft()
            del self._by_tag[entry[0]]
            if entry[2] == _ACKABLE:
                last = entry[1]
        if last is not None:
            self._spawn(last.ack(multiple=True))
        if any(entry[2] == _ACKABLE for entry in self._open):
            # Ready, but behind a delivery still in flight: ack these one by one.
            keep: collections.deque[list[Any]] = collections.deque()
            for entry in self._open:
                if entry[2] == _ACKABLE:
                    del self._by_tag[entry[0]]
                    self._spawn(entry[1].ack())
                else:
                    keep.append(entry)
            self._open = keep

    def _spawn(self, action: Awaitable[None]) -> None:
        task = asyncio.ensure_future(_settle(action))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class JobEventsConsumer:
    """Consumes JobStateChanged events into the read model."""

    def __init__(
        self,
        connection: aio_pika.abc.AbstractRobustConnection,
        store: NotifierStore,
        *,
        prefetch: int = 64,
        retry_for_s: float = 30.0,
        observe_lag: Callable[[float], None] | None = None,
        max_batch: int = 256,
        commits: CommitListener | None = None,
    ) -> None:
        self._connection = connection
        self._observe_lag = observe_lag
        self._store = store
        self._prefetch = prefetch
        self._retry_for_s = retry_for_s
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._tag: str | None = None
        self.applied = 0
        self.skipped = 0
        # Deliveries run as concurrent tasks; the one writer applies their changes in delivery
        # order (a job's later event never overtakes an earlier one), many per transaction.
        self.writer = BatchWriter(
            store, transient=_TRANSIENT, max_batch=max_batch, retry_for_s=retry_for_s, listener=commits
        )
        self.acks = AckBatcher()

    async def start(self) -> None:
        """Open a channel, declare the queue and start consuming."""
        self._channel = await self._connection.channel()
        await self._channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await declare(self._channel)
        self.writer.start()
        self._tag = await self._queue.consume(self.handle)

    async def stop(self) -> None:
        """Stop taking deliveries (in-flight ones finish or are redelivered) and close the channel."""
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as exc:  # the channel may already be gone at shutdown
                log.info("cancelling the consumer failed: %s", exc)
        self._tag = None
        # Commit what was handed over (those deliveries are acked) before the channel goes.
        await self.writer.close()
        await self.acks.close()
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def handle(self, incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        """Apply one delivery; undecodable or invalid events go to the dead-letter queue."""
        # No await before the writer's submit: deliveries reach it in delivery order.
        self.acks.received(incoming)
        with broker.consumer_span(SERVICE_NAME, incoming, JOB_EVENTS_QUEUE, observe_lag=self._observe_lag):
            try:
                event = broker.decode(incoming)
                if isinstance(event, OTHER_EVENTS):
                    # Nothing to write; taking its place in the writer's line lets it share an ack frame.
                    with contextlib.suppress(Exception):  # it has no effect: ack it anyway
                        await self.writer.submit(None)
                    self.acks.ack(incoming)
                    return
                if not isinstance(event, events_pb2.JobStateChanged):
                    raise InvalidEvent(f"unexpected message type {incoming.type!r} on {JOB_EVENTS_QUEUE}")
                key = check_event(event.job, event.sequence)
            except (broker.UndecodableMessage, InvalidEvent) as exc:
                log.error("dead-lettering message %s: %s", incoming.message_id, exc)
                await self.acks.settle(incoming, incoming.reject(requeue=False))
                return
            failure = (
                failed_job_notification(event.job) if event.job.state == resources_pb2.PublishJob.STATE_FAILED else None
            )
            # The sequence makes a job's events idempotent even without a message_id.
            message_id = incoming.message_id or f"{key.name}#{event.sequence}"
            try:
                outcome = await self.writer.submit(JobChange(message_id, key, event.job, event.sequence, failure))
            except _TRANSIENT as exc:
                log.warning("could not apply %s (%s); requeueing", message_id, exc)
                await self.acks.settle(incoming, incoming.nack(requeue=True))
                return
            except Exception:
                log.exception("applying %s failed; requeueing", message_id)
                await asyncio.sleep(1.0)  # no hot redelivery loop; the delivery limit ends it
                await self.acks.settle(incoming, incoming.nack(requeue=True))
                return
            if outcome is ApplyOutcome.APPLIED:
                self.applied += 1
            else:
                self.skipped += 1
            self.acks.ack(incoming)


async def _settle(action: Awaitable[None]) -> None:
    # A delivery received before a reconnect (or a channel closed at shutdown) cannot be settled;
    # the broker redelivers it and the dedupe makes that harmless.
    try:
        await action
    except Exception as exc:
        log.info("could not settle a delivery (%s); it will be redelivered", exc)
