"""Broker adapter: consume ``publisher.publish-requests`` into job rows.

A delivery is acked only after its job row (or its TIMEOUT failure) is committed; the pipeline
then drives the row. Deliveries that are not a usable PublishRequested are nacked with requeue,
so the quorum queue's delivery limit moves them to the dead-letter queue while consumption goes
on; when the job name is readable that job fails with REASON_INTERNAL.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol, TypeVar

import aio_pika.abc

from chassis import broker, telemetry
from services.publisher import codec
from services.publisher.domain import ErrorReason, Job, JobState, iso_utc, timeout_error
from services.publisher.options import PipelineOptions
from services.publisher.store import Claim, JobStore
from speako.events.v1 import events_pb2

log = logging.getLogger("speako.publisher.messaging")

T = TypeVar("T")


class Accepted(enum.Enum):
    """What the consumer did with a valid request."""

    NEW = "NEW"  # a SUBMITTED row for the workers
    TIMED_OUT = "TIMED_OUT"  # consumed after its deadline: failed at once, never deployed
    KNOWN = "KNOWN"  # the job exists already (terminal or in progress): nothing to do
    DUPLICATE = "DUPLICATE"  # this delivery was handled before


class WorkerSlots(Protocol):
    """The pipeline's side of taking a job on as its request is accepted (Pipeline implements it)."""

    owner: str
    options: PipelineOptions

    def reserve(self) -> bool: ...

    def unreserve(self) -> None: ...

    def adopt(self, claim: Claim) -> None: ...


class PublishRequestConsumer:
    """Consumes publish requests with bounded prefetch; survives reconnects (robust channel)."""

    def __init__(
        self,
        connection: aio_pika.abc.AbstractRobustConnection,
        store: JobStore,
        *,
        prefetch: int,
        default_deadline_s: float,
        on_new_job: Callable[[], None],
        clock: Callable[[], datetime],
        service_name: str = "speako-publisher",
        observe_lag: Callable[[float], None] | None = None,
        slots: WorkerSlots | None = None,
        on_job_finished: Callable[[Job], None] | None = None,
    ) -> None:
        self._slots = slots
        self._connection = connection
        self._observe_lag = observe_lag
        # Jobs failed at intake (consumed too late, unreadable) end here, not in the pipeline.
        self._on_job_finished = on_job_finished or (lambda _job: None)
        self._store = store
        self._prefetch = prefetch
        self._default_deadline_s = default_deadline_s
        self._on_new_job = on_new_job
        self._clock = clock
        self._service_name = service_name
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Declare the topology and start consuming."""
        self._channel = await self._connection.channel()
        await self._channel.set_qos(prefetch_count=self._prefetch)
        await broker.declare_topology(self._channel)
        self._queue = await self._channel.get_queue(broker.PUBLISH_REQUESTS_QUEUE)
        self._consumer_tag = await self._queue.consume(self._on_message)
        log.info("consuming %s (prefetch %d)", broker.PUBLISH_REQUESTS_QUEUE, self._prefetch)

    async def stop(self, grace_s: float) -> None:
        """Stop consuming and let deliveries in hand finish (unacked ones return to the queue)."""
        self._stopping.set()
        if self._queue is not None and self._consumer_tag is not None:
            try:
                await asyncio.wait_for(self._queue.cancel(self._consumer_tag), timeout=5)
            except Exception as exc:
                log.warning("cancelling the consumer failed: %r", exc)
            self._consumer_tag = None
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=grace_s)
        if self._channel is not None and not self._channel.is_closed:
            try:
                await asyncio.wait_for(self._channel.close(), timeout=5)
            except Exception as exc:
                log.warning("closing the consumer channel failed: %r", exc)

    async def _on_message(self, incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            with broker.consumer_span(
                self._service_name, incoming, broker.PUBLISH_REQUESTS_QUEUE, observe_lag=self._observe_lag
            ):
                await self.handle(incoming)
        except Exception:
            # A bug or a broken channel: requeue, so the delivery limit bounds a message that always fails.
            log.exception("handling delivery %s failed", incoming.message_id)
            try:
                await incoming.nack(requeue=True)
            except Exception as exc:
                log.warning("could not nack delivery %s (it returns on reconnect): %r", incoming.message_id, exc)
        finally:
            if task is not None:
                self._handlers.discard(task)

    async def handle(self, incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        """Turn one delivery into a committed job row, then ack (or nack a poison message)."""
        try:
            message = broker.decode(incoming)
            if not isinstance(message, events_pb2.PublishRequested):
                raise broker.UndecodableMessage(f"unexpected message type {incoming.type!r}")
            job = codec.parse_request(message, now=self._clock(), default_deadline_s=self._default_deadline_s)
        except (broker.UndecodableMessage, codec.BadRequest) as exc:
            await self._poison(incoming, exc)
            return

        message_id = incoming.message_id or f"job:{job.name}"
        # The worker's spans continue this consumer span, so the whole job stays in the publish trace.
        trace_context = telemetry.inject_headers()

        slots = self._slots
        reserved = slots is not None and slots.reserve()
        adopted: Claim | None = None

        async def accept() -> Accepted:
            nonlocal adopted
            now = self._clock()
            owner: str | None = None
            lease_s = 0.0
            if job.overdue(now):
                # Consumed late (after an outage): fail it now and never deploy it.
                error = timeout_error(iso_utc(job.deadline), 0)
                row = job.fail(error.reason, error.message, now)
            elif reserved and slots is not None:
                # Claimed in the commit that accepts it: leased to this process and PROCESSING,
                # with no separate claim transaction (a worker slot is already held for it).
                row = job.advance(JobState.PROCESSING, now)
                owner, lease_s = slots.owner, slots.options.lease_s
            else:
                row = job
            # One statement, autocommit: the delivery remembered, the job inserted, its event written.
            async with self._store.statement() as con:
                new, inserted = await self._store.intake(
                    con, message_id, row, trace_context, owner=owner, lease_s=lease_s
                )
            if not new:
                return Accepted.DUPLICATE
            if not inserted:
                return Accepted.KNOWN
            if row.state is JobState.FAILED:
                self._on_job_finished(row)
                return Accepted.TIMED_OUT
            if owner is not None:
                adopted = Claim(row, trace_context)
            return Accepted.NEW

        try:
            outcome = await self._with_database(accept)
        finally:
            if reserved and slots is not None:
                if adopted is not None:
                    # The lease is this process's from the commit on: work it even if the ack fails.
                    slots.adopt(adopted)
                else:
                    slots.unreserve()
        if outcome is None:
            return  # shutting down with the database away: the unacked delivery returns to the queue
        await incoming.ack()
        if outcome is Accepted.NEW and adopted is None:
            self._on_new_job()
        # A new job is logged when it ends (with its trace id); the intake line is for the exceptions.
        log.log(
            logging.DEBUG if outcome is Accepted.NEW else logging.INFO,
            "publish request %s for %s: %s",
            message_id,
            job.name,
            outcome.value,
        )

    async def _poison(self, incoming: aio_pika.abc.AbstractIncomingMessage, exc: Exception) -> None:
        job_name = exc.job_name if isinstance(exc, codec.BadRequest) else _job_name_of(incoming)
        log.warning(
            "unusable delivery %s (type %r, delivery %s): %s",
            incoming.message_id,
            incoming.type,
            (incoming.headers or {}).get("x-delivery-count", 0),
            exc,
        )
        if job_name:
            failed = await self._with_database(lambda: self._fail_unreadable(job_name, incoming, str(exc)))
            if failed is None:
                return
        # Requeued: the delivery limit, not this process, decides when it moves to the dead letters.
        await incoming.nack(requeue=True)

    async def _fail_unreadable(
        self, job_name: str, incoming: aio_pika.abc.AbstractIncomingMessage, reason: str
    ) -> bool:
        # Only a job the publisher never accepted is failed; a healthy job is not harmed by junk.
        async with self._store.transaction() as con:
            now = self._clock()
            job = codec.unreadable_job(incoming.body, job_name, now, self._default_deadline_s)
            failed = job.fail(ErrorReason.INTERNAL, f"unusable publish request: {reason}", now)
            inserted = await self._store.insert(con, failed)
        if inserted:
            self._on_job_finished(failed)
        return inserted

    async def _with_database(self, operation: Callable[[], Awaitable[T]]) -> T | None:
        """Run a database step, waiting out outages (a delivery is held, never dead-lettered for it)."""
        backoff = 0.1
        while True:
            try:
                return await operation()
            except Exception as exc:
                if self._stopping.is_set():
                    log.warning("giving up a delivery at shutdown: %r", exc)
                    return None
                log.warning("database step failed, retrying in %.1fs: %r", backoff, exc)
                try:
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 5.0)


def _job_name_of(incoming: aio_pika.abc.AbstractIncomingMessage) -> str:
    """The job name of a delivery that did not decode, if its body still parses as a request."""
    try:
        message = events_pb2.PublishRequested.FromString(incoming.body)
    except Exception:
        return ""
    return codec.readable_job_name(message)
