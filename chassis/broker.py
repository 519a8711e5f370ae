"""RabbitMQ: the robust connection, the topology of DESIGN.md section 5, and message encoding.

Messages are protobuf with ``content_type`` application/x-protobuf, ``type`` the full message
name, a ``message_id`` (the consumer's dedupe key), persistent delivery and W3C trace headers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aio_pika.abc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry import trace
from opentelemetry.trace import SpanKind

import speako.events.v1.events_pb2  # noqa: F401  (registers the event types for decode)
from chassis import telemetry

PUBLISH_EXCHANGE = "speako.publish"
EVENTS_EXCHANGE = "speako.events"
DEAD_LETTER_EXCHANGE = "speako.dead-letter"
PUBLISH_REQUESTS_QUEUE = "publisher.publish-requests"
PUBLISH_REQUESTED = "publish.requested"
# The notifier's queue takes every event, so nothing published on speako.events is ever unroutable
# (the outbox publishes with mandatory=True and would otherwise retry such a row forever).
EVENTS_QUEUE = "notifier.events"
EVENTS_QUEUE_KEYS = ("job.*", "version.*", "agent.*")
CONTENT_TYPE = "application/x-protobuf"
# Deliveries before a message is dead-lettered (quorum queues in RabbitMQ 3.x have no default).
# Generous: RabbitMQ counts a return on a consumer's crash or channel loss as a delivery, and a
# valid message must survive several of those (a database outage held across restarts).
DEFAULT_DELIVERY_LIMIT = 20
# A publish during a broker outage can hang forever without one.
PUBLISH_TIMEOUT_S = 10.0
# When the message was created (epoch seconds as text; AMQP's own timestamp has whole seconds only):
# consumers measure their lag from it.
CREATED_AT_HEADER = "x-speako-created-at"


class UndecodableMessage(ValueError):
    """A delivery that is not a protobuf message this platform knows."""


async def connect(amqp_url: str, name: str) -> aio_pika.abc.AbstractRobustConnection:
    """Open a robust connection that reconnects and restores its channels and consumers."""
    return await aio_pika.connect_robust(amqp_url, client_properties={"connection_name": name}, timeout=10)


async def declare_work_queue(
    channel: aio_pika.abc.AbstractChannel,
    name: str,
    *,
    exchange: str,
    routing_keys: Iterable[str],
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
) -> aio_pika.abc.AbstractQueue:
    """Declare a quorum work queue with a delivery limit and its dead-letter queue."""
    dead_letters = await channel.declare_queue(
        f"{name}.dead-letter", durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_letters.bind(DEAD_LETTER_EXCHANGE, routing_key=name)
    queue = await channel.declare_queue(
        name,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": name,
        },
    )
    for key in routing_keys:
        await queue.bind(exchange, routing_key=key)
    return queue


async def declare_topology(channel: aio_pika.abc.AbstractChannel) -> None:
    """Declare the exchanges and the two work queues; idempotent, every service calls it.

    Whichever service starts first, every message it publishes then has a queue to land in.
    """
    await channel.declare_exchange(PUBLISH_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    await channel.declare_exchange(DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    await declare_work_queue(
        channel, PUBLISH_REQUESTS_QUEUE, exchange=PUBLISH_EXCHANGE, routing_keys=[PUBLISH_REQUESTED]
    )
    await declare_work_queue(channel, EVENTS_QUEUE, exchange=EVENTS_EXCHANGE, routing_keys=EVENTS_QUEUE_KEYS)


def encode(
    message: Message, *, message_id: str | None = None, headers: Mapping[str, str] | None = None
) -> aio_pika.Message:
    """Wrap a protobuf message for the broker (persistent, typed, with a message_id)."""
    return aio_pika.Message(
        body=message.SerializeToString(),
        content_type=CONTENT_TYPE,
        type=message.DESCRIPTOR.full_name,
        message_id=message_id or str(uuid.uuid4()),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        timestamp=datetime.now(UTC),
        headers={**created_at_header(datetime.now(UTC)), **(headers or {})},
    )


def message_class(type_name: str) -> type[Message]:
    """Return the generated class of a full protobuf message name."""
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(type_name)
    except KeyError:
        raise UndecodableMessage(f"unknown message type {type_name!r}") from None
    return message_factory.GetMessageClass(descriptor)


def decode(incoming: aio_pika.abc.AbstractIncomingMessage) -> Message:
    """Parse a delivery into its protobuf message; UndecodableMessage when impossible."""
    if incoming.content_type != CONTENT_TYPE:
        raise UndecodableMessage(f"content_type {incoming.content_type!r} is not {CONTENT_TYPE}")
    cls = message_class(incoming.type or "")
    try:
        return cls.FromString(incoming.body)
    except DecodeError as exc:
        raise UndecodableMessage(f"body is not a valid {incoming.type}: {exc}") from exc


def string_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """AMQP headers as str -> str (bytes decoded), for trace context extraction."""
    out: dict[str, str] = {}
    for key, value in (headers or {}).items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            out[key] = value
    return out


def created_at_header(created: datetime) -> dict[str, str]:
    """The header a consumer measures its lag from."""
    return {CREATED_AT_HEADER: f"{created.timestamp():.6f}"}


def message_age_s(incoming: aio_pika.abc.AbstractIncomingMessage) -> float | None:
    """Seconds since the delivery's message was created, if it says when."""
    raw = string_headers(incoming.headers).get(CREATED_AT_HEADER)
    try:
        return max(0.0, datetime.now(UTC).timestamp() - float(raw)) if raw is not None else None
    except ValueError:
        return None


async def queue_depths(connection: aio_pika.abc.AbstractConnection, queues: Iterable[str]) -> dict[str, int]:
    """Messages ready in each queue and in its dead-letter queue (passive declares; no side effects)."""
    channel = await connection.channel()
    try:
        depths: dict[str, int] = {}
        for name in queues:
            for queue in (name, f"{name}.dead-letter"):
                declared = await channel.declare_queue(queue, passive=True)
                depths[queue] = declared.declaration_result.message_count or 0
        return depths
    finally:
        await channel.close()


@contextmanager
def consumer_span(
    service_name: str,
    incoming: aio_pika.abc.AbstractIncomingMessage,
    queue: str = "",
    observe_lag: Callable[[float], None] | None = None,
) -> Iterator[trace.Span]:
    """A CONSUMER span continuing the trace in the delivery's W3C headers (the broker hop).

    Work done inside it (DB writes, outbox rows, outgoing RPCs) joins the publisher's trace.
    ``observe_lag`` receives the message's age on arrival (see CREATED_AT_HEADER).
    """
    age = message_age_s(incoming) if observe_lag is not None else None
    if age is not None and observe_lag is not None:
        observe_lag(age)
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation": "process",
        "messaging.destination.name": incoming.exchange or "",
        "messaging.rabbitmq.destination.routing_key": incoming.routing_key or "",
        "messaging.message.id": incoming.message_id or "",
    }
    if queue:
        attributes["messaging.source.name"] = queue
    with telemetry.span_from_headers(
        service_name,
        f"{queue or incoming.routing_key} process",
        string_headers(incoming.headers),
        SpanKind.CONSUMER,
        attributes,
    ) as span:
        yield span
