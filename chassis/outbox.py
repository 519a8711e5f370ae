"""The transactional outbox: write a message with the change, publish it after commit.

The relay takes unsent rows with ``FOR UPDATE SKIP LOCKED`` instead of polling ``id > last``:
rows whose transactions commit out of id order are never skipped, and the drains of two replicas
never publish the same row at once. A row is deleted only after the broker confirmed it, so a
crash in between re-publishes it (consumers dedupe on ``message_id``).

A writer that runs its transaction inside ``OutboxRelay.after_commit()`` hands the rows it wrote
straight to its own process's relay when the transaction commits: they are published at once, with
no NOTIFY round trip, no poll and no re-read of the row, and deleted in one statement per batch.
The relay's drain skips those rows while they are in hand; a row whose direct publish fails, or
whose process dies before publishing it, is left to the drain (poll or another replica). Another
replica's drain can also take a handed-over row between its commit and its DELETE, so such a row
may be published twice: at least once, as everywhere else.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import aio_pika.abc
import asyncpg
from google.protobuf.message import Message
from opentelemetry.trace import SpanKind, Status, StatusCode

from chassis import broker, telemetry
from chassis.database import connect

log = logging.getLogger("speako.outbox")

MIGRATIONS_DIR = Path(__file__).parent / "migrations" / "outbox"


@dataclass(frozen=True)
class Outgoing:
    """One message to write to the outbox (and, when handed over, to publish)."""

    message_id: str
    exchange: str
    routing_key: str
    message_type: str
    body: bytes
    headers: Mapping[str, str]

    @classmethod
    def of(cls, *, exchange: str, routing_key: str, message: Message, message_id: str | None = None) -> Outgoing:
        """A message with its trace context (the current span's) captured now."""
        return cls(
            message_id or str(uuid.uuid4()),
            exchange,
            routing_key,
            message.DESCRIPTOR.full_name,
            message.SerializeToString(),
            telemetry.inject_headers(),
        )

    def params(self) -> tuple[Any, ...]:
        """The six values of ``insert_sql``'s placeholders, in order."""
        return (
            uuid.UUID(self.message_id),
            self.exchange,
            self.routing_key,
            self.message_type,
            self.body,
            json.dumps(dict(self.headers)),
        )


def insert_sql(first: int, count: int = 1) -> str:
    """``INSERT INTO outbox ... RETURNING id, message_id`` for ``count`` rows taking $first... (6 per row).

    For writers folding their outbox rows into a larger statement (a CTE); report the ids with
    ``written`` so a relay in ``after_commit`` publishes them.
    """
    rows = ", ".join(
        "(" + ", ".join(f"${first + 6 * r + i}" for i in range(5)) + f", ${first + 6 * r + 5}::jsonb)"
        for r in range(count)
    )
    return (
        "INSERT INTO outbox (message_id, exchange, routing_key, message_type, body, headers) "
        f"VALUES {rows} RETURNING id, message_id"
    )


def insert_select_sql(first: int, source: str, name: str) -> str:
    """A CTE ``name AS (INSERT INTO outbox ... SELECT $first.. FROM source RETURNING id)``.

    For a statement that writes one outbox row per row of its CTE ``source`` (the row exists only
    if the change did); pair it with ``notify_sql`` and report the id with ``written``.
    """
    values = ", ".join(f"${first + i}::{t}" for i, t in enumerate(("uuid", "text", "text", "text", "bytea", "jsonb")))
    return (
        f"{name} AS (INSERT INTO outbox (message_id, exchange, routing_key, message_type, body, headers) "
        f"SELECT {values} FROM {source} RETURNING id)"
    )


def notify_sql(ids: str) -> str:
    """A select-list item waking the relays at commit when ``ids`` has a row (none when handing over)."""
    if handing_over():
        return ""
    return f", (SELECT pg_notify(current_schema() || '_outbox', '')::text FROM {ids} LIMIT 1) AS notified"


@dataclass(frozen=True)
class _Handed:
    id: int
    outgoing: Outgoing
    created: datetime


class _Handover:
    """The rows one transaction wrote, for the local relay once it commits."""

    def __init__(self, in_hand: set[int]) -> None:
        self.rows: list[_Handed] = []
        # The relay's set: ids enter it before the commit makes them visible to its drain.
        self.in_hand = in_hand
        # A task started inside the block inherits the context variable: once the block is over,
        # what it writes is not handed over (nothing would flush it) but left to the drain.
        self.open = True


_HANDOVER: contextvars.ContextVar[_Handover | None] = contextvars.ContextVar("outbox_handover", default=None)


def _open_handover() -> _Handover | None:
    handover = _HANDOVER.get()
    return handover if handover is not None and handover.open else None


def handing_over() -> bool:
    """True inside ``OutboxRelay.after_commit()``: rows go to the local relay, no NOTIFY is needed."""
    return _open_handover() is not None


def written(rows: Iterable[tuple[int, uuid.UUID | str]], messages: list[Outgoing]) -> None:
    """Report rows a caller inserted itself (with ``insert_sql``): (id, message_id) pairs.

    Paired by message_id, not by position: PostgreSQL does not promise RETURNING's order.
    """
    handover = _open_handover()
    if handover is not None:
        created = datetime.now(UTC)
        ids = {uuid.UUID(str(message_id)): row_id for row_id, message_id in rows}
        handed = [_Handed(ids[uuid.UUID(m.message_id)], m, created) for m in messages]
        handover.rows.extend(handed)
        handover.in_hand.update(h.id for h in handed)


async def enqueue_all(con: asyncpg.Connection, messages: list[Outgoing]) -> None:
    """Add messages to the outbox inside the caller's transaction, in one statement."""
    if not messages:
        return
    params = [p for m in messages for p in m.params()]
    if handing_over():
        rows = await con.fetch(insert_sql(1, len(messages)), *params)
        written([(r["id"], r["message_id"]) for r in rows], messages)
        return
    # One statement (one round trip): the rows, and a NOTIFY delivered at commit that wakes the
    # relay without waiting for its poll.
    await con.execute(
        f"WITH row AS ({insert_sql(1, len(messages))}) "
        "SELECT pg_notify(current_schema() || '_outbox', '') FROM (SELECT 1 FROM row LIMIT 1) AS one",
        *params,
    )


async def enqueue(
    con: asyncpg.Connection,
    *,
    exchange: str,
    routing_key: str,
    message: Message,
    message_id: str | None = None,
) -> str:
    """Add a message to the outbox inside the caller's transaction; returns its message_id."""
    outgoing = Outgoing.of(exchange=exchange, routing_key=routing_key, message=message, message_id=message_id)
    await enqueue_all(con, [outgoing])
    return outgoing.message_id


def _outgoing(row: asyncpg.Record) -> Outgoing:
    headers = json.loads(row["headers"]) if isinstance(row["headers"], str) else dict(row["headers"])
    return Outgoing(
        str(row["message_id"]),
        row["exchange"],
        row["routing_key"],
        row["message_type"],
        bytes(row["body"]),
        {str(k): str(v) for k, v in headers.items()},
    )


async def _close_quietly(channel: aio_pika.abc.AbstractChannel) -> None:
    """Close a channel of the relay for good, even one the broker closed or that never opened.

    A robust channel is reopened by its connection's restore unless closed, and a restore already
    in flight reopens it after this close: it is closed again then.
    """
    if isinstance(channel, aio_pika.abc.AbstractRobustChannel):
        channel.reopen_callbacks.add(_close_again)
    try:
        async with asyncio.timeout(broker.PUBLISH_TIMEOUT_S):
            await channel.close()
    except Exception:
        log.debug("closing a broken outbox channel failed", exc_info=True)


_CLOSING_AGAIN: set[asyncio.Future[None]] = set()


def _close_again(channel: aio_pika.abc.AbstractRobustChannel | None, /) -> None:
    # Not awaited by the restore that called it: the channel is closed once its reopening is over.
    if channel is None:
        return  # already collected
    closing = asyncio.ensure_future(_close_quietly(channel))
    _CLOSING_AGAIN.add(closing)
    closing.add_done_callback(_CLOSING_AGAIN.discard)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class OutboxRelay:
    """Background task publishing one schema's outbox rows to RabbitMQ."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        connection: aio_pika.abc.AbstractRobustConnection,
        *,
        database_url: str,
        schema: str,
        service_name: str,
        batch_size: int = 200,
        poll_interval_s: float = 1.0,
    ) -> None:
        self._pool = pool
        self._connection = connection
        self._database_url = database_url
        self._schema = schema
        self._service_name = service_name
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        # Each exchange is published to on a confirm channel of its own: a missing exchange closes
        # the channel that asked for it (404), which must not abort the publishes in flight to the
        # others. The rows of a round are published concurrently; they share one opening per
        # exchange (and its failure), so they never open a channel each (all but one left open)
        # nor reach the broker out of order on first use.
        self._publishing: dict[str, tuple[aio_pika.abc.AbstractChannel, aio_pika.abc.AbstractExchange]] = {}
        self._opening: dict[str, asyncio.Future[aio_pika.abc.AbstractExchange]] = {}
        self._listener: asyncpg.Connection | None = None
        # Rows handed over by this process's committed transactions, and the ids in hand (which
        # the drain skips, so a row is not published twice by one process).
        self._local: list[_Handed] = []
        self._notified = False
        self._in_hand: set[int] = set()
        self.published = 0

    @asynccontextmanager
    async def after_commit(self) -> AsyncIterator[None]:
        """Wrap a transaction: the outbox rows it writes are published as soon as it commits.

        Enter this before the transaction and leave it after the commit (``async with
        relay.after_commit(), pool.acquire() as con, con.transaction():``). Rows of a transaction
        that rolled back are never published (the exception skips the hand-over).
        Never swallow a database error inside the block: asyncpg would still send COMMIT, which
        PostgreSQL turns into a rollback, and rows that never existed would be handed over.
        """
        handover = _Handover(self._in_hand)
        token = _HANDOVER.set(handover)
        try:
            yield
        except BaseException:
            self._in_hand.difference_update(r.id for r in handover.rows)
            raise
        finally:
            handover.open = False
            _HANDOVER.reset(token)
        if handover.rows:
            self._local.extend(handover.rows)
            self._wake.set()

    async def run(self) -> None:
        """Publish until cancelled, riding out broker and database outages with backoff."""
        backoff = 0.1
        next_drain = 0.0
        while True:
            try:
                await self._ensure_listener()
                # Cleared before working, so a NOTIFY or hand-over meanwhile triggers the next round.
                self._wake.clear()
                if self._local:
                    await self.flush_local()
                if self._notified or time.monotonic() >= next_drain:
                    self._notified = False
                    next_drain = time.monotonic() + self._poll_interval_s
                    if await self.drain_once() >= self._batch_size:
                        next_drain = 0.0
                        continue
                backoff = 0.1
                if not self._local:
                    await self._sleep_until_woken(max(0.0, next_drain - time.monotonic()))
            except asyncio.CancelledError:
                await self._close()
                raise
            except Exception as exc:
                if _cancelling():
                    # A library turned our cancellation into another error: honour it anyway.
                    await self._close()
                    raise asyncio.CancelledError() from exc
                log.warning("outbox relay (%s) failed, retrying in %.1fs: %r", self._schema, backoff, exc)
                await self._reset_channels()
                # Rows that failed their direct publish are the drain's now (with their backoff).
                next_drain = 0.0
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def flush_local(self) -> int:
        """Publish the rows handed over by committed transactions; delete the confirmed ones.

        A row the broker did not confirm stays in the table for the drain.
        """
        rows, self._local = self._local, []
        try:
            results = await asyncio.gather(
                *(self._publish(r.outgoing, r.created) for r in rows), return_exceptions=True
            )
            sent = [r.id for r, result in zip(rows, results, strict=True) if result is None]
            if sent:
                async with self._pool.acquire() as con:
                    # A row another replica's drain holds is left to it (it deletes the row once
                    # confirmed): waiting for its lock would stall every hand-over behind that
                    # drain's publish, up to its timeout if its broker is unwell.
                    await con.execute(
                        "DELETE FROM outbox WHERE id IN "
                        "(SELECT id FROM outbox WHERE id = ANY($1::bigint[]) FOR UPDATE SKIP LOCKED)",
                        sent,
                    )
        finally:
            self._in_hand.difference_update(r.id for r in rows)
        self.published += len(sent)
        errors = [result for result in results if result is not None]
        if errors:
            raise RuntimeError(f"{len(errors)} outbox message(s) not confirmed: {errors[0]!r}")
        return len(sent)

    async def drain_once(self) -> int:
        """Publish one batch of pending rows; returns how many were confirmed."""
        async with self._pool.acquire() as con, con.transaction():
            rows = await con.fetch(
                "SELECT id, message_id, exchange, routing_key, message_type, body, headers, created_at FROM outbox "
                "WHERE next_attempt_at <= clock_timestamp() AND id <> ALL($2::bigint[]) "
                "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
                list(self._in_hand),
            )
            # A row handed over after the query's arguments were taken (while asyncpg prepared it,
            # say) is in hand now: its flush publishes and deletes it once this transaction is over
            # (flush and drain take turns in run()).
            rows = [row for row in rows if row["id"] not in self._in_hand]
            if not rows:
                return 0
            results = await asyncio.gather(
                *(self._publish(_outgoing(row), row["created_at"]) for row in rows), return_exceptions=True
            )
            sent = [row["id"] for row, result in zip(rows, results, strict=True) if result is None]
            failed = [
                (row["id"], repr(result)[:500]) for row, result in zip(rows, results, strict=True) if result is not None
            ]
            if sent:
                await con.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", sent)
            if failed:
                # Each refused row waits out its own backoff, so it cannot hold back the rows behind it.
                await con.executemany(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = clock_timestamp()"
                    " + least(0.5 * power(2, attempts), 30) * interval '1 second' WHERE id = $1",
                    failed,
                )
        self.published += len(sent)
        if failed:
            raise RuntimeError(f"{len(failed)} outbox message(s) not confirmed: {failed[0][1]}")
        return len(sent)

    async def backlog(self) -> tuple[int, float]:
        """Pending rows and the age in seconds of the oldest (for metrics)."""
        async with self._pool.acquire() as con:
            row = await con.fetchrow(
                "SELECT count(*) AS n, COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0) "
                "AS age FROM outbox"
            )
        return int(row["n"]), float(row["age"])

    async def _publish(self, row: Outgoing, created: datetime) -> None:
        attributes = {
            "messaging.system": "rabbitmq",
            "messaging.destination.name": row.exchange,
            "messaging.rabbitmq.destination.routing_key": row.routing_key,
            "messaging.message.id": row.message_id,
        }
        with telemetry.span_from_headers(
            self._service_name, f"{row.exchange} publish", dict(row.headers), SpanKind.PRODUCER, attributes
        ) as span:
            message = aio_pika.Message(
                body=row.body,
                content_type=broker.CONTENT_TYPE,
                type=row.message_type,
                message_id=row.message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={**broker.created_at_header(created), **telemetry.inject_headers()},
            )
            exchange = await self._exchange(row.exchange)
            try:
                await exchange.publish(
                    message, routing_key=row.routing_key, mandatory=True, timeout=broker.PUBLISH_TIMEOUT_S
                )
            except Exception as exc:
                span.set_status(Status(StatusCode.ERROR, repr(exc)))
                raise

    async def _exchange(self, name: str) -> aio_pika.abc.AbstractExchange:
        exchange = self._open_exchange(name)
        if exchange is not None:
            return exchange  # the usual case: no suspension
        opening = self._opening.get(name)
        if opening is None:
            opening = self._opening[name] = asyncio.ensure_future(self._open(name))
            opening.add_done_callback(functools.partial(self._opened, name))
        # Shielded: one waiter's cancellation must not fail the opening the others wait for.
        return await asyncio.shield(opening)

    def _opened(self, name: str, opening: asyncio.Future[aio_pika.abc.AbstractExchange]) -> None:
        if self._opening.get(name) is opening:
            del self._opening[name]  # the next round opens anew, or finds the channel open
        if not opening.cancelled():
            opening.exception()  # retrieved: every row waiting for it may have been cancelled

    async def _open(self, name: str) -> aio_pika.abc.AbstractExchange:
        stale = self._publishing.pop(name, None)
        if stale is not None:
            await _close_quietly(stale[0])
        # Not awaited here: a robust connection reopens on reconnect every channel it handed out,
        # so one whose opening fails (in an outage) must still reach the close below.
        channel = self._connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            # aio-pika bounds neither step; a half-open connection would hold every row waiting.
            async with asyncio.timeout(broker.PUBLISH_TIMEOUT_S):
                await channel
                exchange = await channel.get_exchange(name, ensure=True)
        except BaseException:
            await _close_quietly(channel)
            raise
        self._publishing[name] = (channel, exchange)
        return exchange

    def _open_exchange(self, name: str) -> aio_pika.abc.AbstractExchange | None:
        channel, exchange = self._publishing.get(name, (None, None))
        return exchange if channel is not None and not channel.is_closed else None

    async def _reset_channels(self) -> None:
        openings, self._opening = self._opening, {}
        for opening in openings.values():
            opening.cancel()
        # Each closes its channel as it ends: before this returns (at shutdown, say).
        await asyncio.gather(*openings.values(), return_exceptions=True)
        publishing, self._publishing = self._publishing, {}
        for channel, _ in publishing.values():
            await _close_quietly(channel)

    async def _ensure_listener(self) -> None:
        # LISTEN connections can die silently; polling covers the gap until this reconnects.
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            self._listener = await connect(self._database_url, self._schema, name=f"{self._schema}-outbox")
            await self._listener.add_listener(f"{self._schema}_outbox", self._on_notify)
        except Exception as exc:
            self._listener = None
            log.warning("outbox LISTEN unavailable (%r); polling every %.1fs", exc, self._poll_interval_s)

    def _on_notify(self, *_: object) -> None:
        self._notified = True
        self._wake.set()

    async def _sleep_until_woken(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass

    async def _close(self) -> None:
        await self._reset_channels()
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()
