"""Helpers of the notifier integration tests: app replicas on one database, event publishing, stubs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import aio_pika.abc
import grpc
import grpc.aio
from google.protobuf.timestamp_pb2 import Timestamp

from chassis import broker
from chassis.server import GrpcApp
from chassis.settings import Settings
from services.notifier.main import NotifierOptions, create_app
from speako.config.v1 import resources_pb2
from speako.events.v1 import events_pb2
from speako.notifier.v1 import notifier_service_pb2 as svc
from speako.notifier.v1 import notifier_service_pb2_grpc
from tests.conftest import bearer

S = resources_pb2.PublishJob.State
ROUTING = {
    S.STATE_SUBMITTED: "job.submitted",
    S.STATE_PROCESSING: "job.processing",
    S.STATE_PUBLISHED: "job.published",
    S.STATE_FAILED: "job.failed",
    S.STATE_SUPERSEDED: "job.superseded",
}
FAST = NotifierOptions(heartbeat_s=0.5, job_wait_s=3.0, feed_poll_interval_s=0.2, prune_interval_s=3600)


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def job_name(tenant: str = "acme", agent: str = "front-desk") -> str:
    return f"tenants/{tenant}/agents/{agent}/publishJobs/{uuid.uuid4()}"


def make_job(
    name: str,
    state: int,
    *,
    version: int = 1,
    created: datetime | None = None,
    attempts: int = 0,
    reason: int = 0,
) -> resources_pb2.PublishJob:
    created = created or datetime.now(UTC)
    job = resources_pb2.PublishJob(
        name=name,
        version=f"{name.split('/publishJobs/')[0]}/versions/{version}",
        state=state,
        attempts=attempts,
        create_time=ts(created),
        update_time=ts(datetime.now(UTC)),
        deadline=ts(created + timedelta(minutes=5)),
        changed_sections=["greetings"],
        requester="alice@acme",
        trace_id="0" * 32,
    )
    if state == S.STATE_FAILED:
        job.error.reason = reason or resources_pb2.PublishError.REASON_INVALID_CONFIG
        job.error.message = "the runtime rejected the bundle"
    return job


class Events:
    """Publishes JobStateChanged events on speako.events exactly as the producers do."""

    def __init__(self, channel: aio_pika.abc.AbstractChannel, exchange: aio_pika.abc.AbstractExchange):
        self._channel = channel
        self._exchange = exchange

    async def publish(self, job: resources_pb2.PublishJob, sequence: int, *, message_id: str | None = None) -> str:
        event = events_pb2.JobStateChanged(job=job, sequence=sequence, event_time=ts(datetime.now(UTC)))
        message = broker.encode(event, message_id=message_id)
        await self._exchange.publish(message, routing_key=ROUTING[job.state], mandatory=True, timeout=10)
        return message.message_id or ""


@dataclass
class Replica:
    """One notifier app and a stub connected to it."""

    app: GrpcApp
    channel: grpc.aio.Channel
    stub: notifier_service_pb2_grpc.NotifierServiceStub
    stopped: bool = False

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.channel.close()
            await self.app.stop(0.5)


@dataclass
class Cluster:
    """Notifier replicas of one test (same database and vhost)."""

    settings: Settings
    replicas: list[Replica] = field(default_factory=list)

    async def start(self, options: NotifierOptions = FAST) -> Replica:
        app = await create_app(self.settings, "127.0.0.1:0", options)
        port = await app.start()
        channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)]
        )
        replica = Replica(app, channel, notifier_service_pb2_grpc.NotifierServiceStub(channel))
        self.replicas.append(replica)
        return replica

    async def close(self) -> None:
        for replica in reversed(self.replicas):
            await replica.stop()


async def open_events(amqp_url: str) -> tuple[aio_pika.abc.AbstractConnection, Events]:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    await broker.declare_topology(channel)
    exchange = await channel.get_exchange(broker.EVENTS_EXCHANGE)
    return connection, Events(channel, exchange)


def md(token: str) -> list[tuple[str, str]]:
    return bearer(token)


async def wait_for(check: Callable[[], Awaitable[Any]], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns a truthy value (observable outcome, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > give_up:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


async def get_job(stub: Any, name: str, metadata: Any) -> resources_pb2.PublishJob | None:
    try:
        return await stub.GetPublishJob(svc.GetPublishJobRequest(name=name), metadata=metadata, timeout=5)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


async def collect(stream: AsyncIterator[Any], count: int, *, skip_heartbeats: bool = True) -> list[Any]:
    """Read ``count`` non-heartbeat messages from a stream."""
    out: list[Any] = []
    async for message in stream:
        if skip_heartbeats and getattr(message, "heartbeat", False):
            continue
        out.append(message)
        if len(out) == count:
            break
    return out
