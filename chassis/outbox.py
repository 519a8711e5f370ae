"""The transactional outbox: write a message with the change, publish it after commit.

The relay takes unsent rows with ``FOR UPDATE SKIP LOCKED`` instead of polling ``id > last``:
rows whose transactions commit out of id order are never skipped, and replicas never publish
the same row at once. A row is deleted only after the broker confirmed it, so a crash in between
re-publishes it (consumers dedupe on ``message_id``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path

import aio_pika
import aio_pika.abc
import asyncpg
from google.protobuf.message import Message
from opentelemetry.trace import SpanKind, Status, StatusCode

from chassis import broker, telemetry
from chassis.database import connect

log = logging.getLogger("speako.outbox")

MIGRATIONS_DIR = Path(__file__).parent / "migrations" / "outbox"


async def enqueue(
    con: asyncpg.Connection,
    *,
    exchange: str,
    routing_key: str,
    message: Message,
    message_id: str | None = None,
) -> str:
    """Add a message to the outbox inside the caller's transaction; returns its message_id."""
    message_id = message_id or str(uuid.uuid4())
    # One statement (one round trip): the row, and a NOTIFY delivered at commit that wakes the
    # relay without waiting for its poll.
    await con.execute(
        "WITH row AS (INSERT INTO outbox (message_id, exchange, routing_key, message_type, body, headers) "
        "VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING id) "
        "SELECT pg_notify(current_schema() || '_outbox', '') FROM row",
        uuid.UUID(message_id),
        exchange,
        routing_key,
        message.DESCRIPTOR.full_name,
        message.SerializeToString(),
        json.dumps(telemetry.inject_headers()),
    )
    return message_id


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
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}
        self._listener: asyncpg.Connection | None = None
        self.published = 0

    async def run(self) -> None:
        """Publish until cancelled, riding out broker and database outages with backoff."""
        backoff = 0.1
        while True:
            try:
                await self._ensure_listener()
                # Cleared before draining, so a NOTIFY during the drain triggers the next round.
                self._wake.clear()
                sent = await self.drain_once()
                backoff = 0.1
                if sent < self._batch_size:
                    await self._sleep_until_woken(self._poll_interval_s)
            except asyncio.CancelledError:
                await self._close()
                raise
            except Exception as exc:
                if _cancelling():
                    # A library turned our cancellation into another error: honour it anyway.
                    await self._close()
                    raise asyncio.CancelledError() from exc
                log.warning("outbox relay (%s) failed, retrying in %.1fs: %r", self._schema, backoff, exc)
                await self._reset_channel()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def drain_once(self) -> int:
        """Publish one batch of pending rows; returns how many were confirmed."""
        async with self._pool.acquire() as con, con.transaction():
            rows = await con.fetch(
                "SELECT id, message_id, exchange, routing_key, message_type, body, headers FROM outbox "
                "WHERE next_attempt_at <= clock_timestamp() ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            if not rows:
                return 0
            results = await asyncio.gather(*(self._publish(row) for row in rows), return_exceptions=True)
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

    async def _publish(self, row: asyncpg.Record) -> None:
        stored = json.loads(row["headers"]) if isinstance(row["headers"], str) else dict(row["headers"])
        attributes = {
            "messaging.system": "rabbitmq",
            "messaging.destination.name": row["exchange"],
            "messaging.rabbitmq.destination.routing_key": row["routing_key"],
            "messaging.message.id": str(row["message_id"]),
        }
        with telemetry.span_from_headers(
            self._service_name, f"{row['exchange']} publish", stored, SpanKind.PRODUCER, attributes
        ) as span:
            message = aio_pika.Message(
                body=bytes(row["body"]),
                content_type=broker.CONTENT_TYPE,
                type=row["message_type"],
                message_id=str(row["message_id"]),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers=dict(telemetry.inject_headers()),
            )
            exchange = await self._exchange(row["exchange"])
            try:
                await exchange.publish(
                    message, routing_key=row["routing_key"], mandatory=True, timeout=broker.PUBLISH_TIMEOUT_S
                )
            except Exception as exc:
                span.set_status(Status(StatusCode.ERROR, repr(exc)))
                raise

    async def _exchange(self, name: str) -> aio_pika.abc.AbstractExchange:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            self._exchanges = {}
        if name not in self._exchanges:
            self._exchanges[name] = await self._channel.get_exchange(name, ensure=True)
        return self._exchanges[name]

    async def _reset_channel(self) -> None:
        channel, self._channel, self._exchanges = self._channel, None, {}
        if channel is not None and not channel.is_closed:
            try:
                await channel.close()
            except Exception:
                log.debug("closing a broken outbox channel failed", exc_info=True)

    async def _ensure_listener(self) -> None:
        # LISTEN connections can die silently; polling covers the gap until this reconnects.
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            self._listener = await connect(self._database_url, self._schema, name=f"{self._schema}-outbox")
            await self._listener.add_listener(f"{self._schema}_outbox", lambda *_: self._wake.set())
        except Exception as exc:
            self._listener = None
            log.warning("outbox LISTEN unavailable (%r); polling every %.1fs", exc, self._poll_interval_s)

    async def _sleep_until_woken(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass

    async def _close(self) -> None:
        await self._reset_channel()
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()
