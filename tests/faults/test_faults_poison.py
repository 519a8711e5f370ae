"""Poison messages on both exchanges: they end in dead-letter queues and consumption goes on."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest

from chassis import broker
from speako.config.v1 import resources_pb2 as res
from speako.events.v1 import events_pb2
from tests.faults.checker import describe
from tests.faults.scenario import checking

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]

PUBLISHER_DLQ = f"{broker.PUBLISH_REQUESTS_QUEUE}.dead-letter"
NOTIFIER_DLQ = f"{broker.EVENTS_QUEUE}.dead-letter"


def _message(body: bytes, type_name: str, content_type: str = broker.CONTENT_TYPE) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        content_type=content_type,
        type=type_name,
        message_id=str(uuid.uuid4()),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def _dead_letters(channel: aio_pika.abc.AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    return declared.declaration_result.message_count or 0


async def test_poison_messages_are_dead_lettered_and_work_goes_on(fp):
    connection = await aio_pika.connect(fp.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        before = {q: await _dead_letters(channel, q) for q in (PUBLISHER_DLQ, NOTIFIER_DLQ)}
        async with checking(fp, "poison") as c:
            requests = await channel.get_exchange(broker.PUBLISH_EXCHANGE)
            events = await channel.get_exchange(broker.EVENTS_EXCHANGE)
            request_type = events_pb2.PublishRequested.DESCRIPTOR.full_name
            event_type = events_pb2.JobStateChanged.DESCRIPTOR.full_name
            poison_requests = [
                _message(b"\xff\x00 not protobuf", request_type),
                _message(b"{}", request_type, content_type="application/json"),
                _message(b"", "speako.events.v1.NoSuchMessage"),
                # Decodes, but names no job: unusable.
                _message(events_pb2.PublishRequested().SerializeToString(), request_type),
            ]
            poison_events = [
                _message(b"\xff\x00 not protobuf", event_type),
                _message(
                    events_pb2.JobStateChanged(job=res.PublishJob(name="not a job name")).SerializeToString(),
                    event_type,
                ),
            ]
            burst = asyncio.create_task(c.burst(24, rate=12))
            await asyncio.sleep(0.5)
            for message in poison_requests:
                await requests.publish(message, routing_key=broker.PUBLISH_REQUESTED, mandatory=True)
            for message in poison_events:
                await events.publish(message, routing_key="job.failed", mandatory=True)
            c.fault_cleared()
            await burst
            recovery = await c.settle()
            # Every poison message reaches a dead-letter queue (the publisher's after the delivery limit).
            expected = {PUBLISHER_DLQ: len(poison_requests), NOTIFIER_DLQ: len(poison_events)}
            dead: dict[str, int] = {}
            for _ in range(100):
                dead = {q: await _dead_letters(channel, q) - before[q] for q in expected}
                if all(dead[q] >= n for q, n in expected.items()):
                    break
                await asyncio.sleep(0.2)
            c.notes.append(f"dead-lettered: {dead} (expected {expected})")
            row = await c.verdict(
                "Poison messages",
                f"{len(poison_requests)} unusable publish requests + {len(poison_events)} bad job events mid-burst",
                recovery,
            )
    finally:
        await connection.close()
    assert row.ok, describe(row)
    assert all(dead[q] >= n for q, n in expected.items()), f"not dead-lettered: {dead}, expected {expected}"
