"""Fixtures of the activation integration tests: app replicas on one database, stubs, event capture."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import grpc
import grpc.aio
import pytest
from google.protobuf.message import Message

from chassis import broker
from chassis.settings import Settings
from services.activation.main import create_app
from services.config.domain.canonical import content_sha256
from services.config.domain.checklist import check_config, has_errors
from speako.activation.v1 import (
    activation_service_pb2 as act,
)
from speako.activation.v1 import (
    activation_service_pb2_grpc,
    resources_pb2,
    runtime_service_pb2,
    runtime_service_pb2_grpc,
)
from speako.config.v1 import resources_pb2 as cfg
from tests.conftest import bearer

Node_ = cfg.FlowNode.Type


def launchable_config(greeting: str = "Thanks for calling {business_name}.") -> cfg.AgentConfig:
    """A config without checklist errors (the greeting varies the content hash)."""
    config = cfg.AgentConfig(
        greetings=cfg.Greetings(opening_greeting=greeting),
        voice=cfg.Voice(voice_id="aria", primary_language="en-US"),
        personality=cfg.Personality(name="Ava", tone=cfg.Personality.Tone.TONE_FRIENDLY, prompt="Be helpful."),
        tools=[
            cfg.Tool(id="desk", type=cfg.Tool.Type.TYPE_TRANSFER_CALL, enabled=True, transfer_number="+14155550100")
        ],
        knowledge=cfg.Knowledge(faqs=[cfg.Faq(question="Open on Sunday?", answer="No.")]),
        flow=cfg.Flow(
            start_node_id="start",
            nodes=[
                cfg.FlowNode(id="start", type=Node_.TYPE_START, next_node_ids=["ask"]),
                cfg.FlowNode(id="ask", type=Node_.TYPE_ASK, prompt="How can I help?", next_node_ids=["bye"]),
                cfg.FlowNode(id="bye", type=Node_.TYPE_END_CALL),
            ],
        ),
        fallback_message="Sorry, let me take a message.",
    )
    assert not has_errors(check_config(config)), check_config(config)
    return config


def broken_config() -> cfg.AgentConfig:
    """A config with checklist errors (empty opening greeting and prompt)."""
    config = launchable_config()
    config.greetings.opening_greeting = ""
    config.personality.prompt = ""
    assert has_errors(check_config(config))
    return config


def bundle(agent: str, number: int, config: cfg.AgentConfig | None = None) -> resources_pb2.Bundle:
    """A consistent bundle of version `number`."""
    config = config if config is not None else launchable_config(f"Hello from version {number}, {{caller_name}}.")
    return resources_pb2.Bundle(
        agent=agent, version=f"{agent}/versions/{number}", content_sha256=content_sha256(config), config=config
    )


class Replica:
    """One running activation app and stubs authenticated as admin (tenant acme) and as a service."""

    def __init__(self, app: Any, channel: grpc.aio.Channel, admin: str, service: str) -> None:
        self.app = app
        self.channel = channel
        self.activation = activation_service_pb2_grpc.ActivationServiceStub(channel)
        self.runtime = runtime_service_pb2_grpc.RuntimeServiceStub(channel)
        self.admin_md = bearer(admin)
        self.service_md = bearer(service)

    async def deploy(self, agent: str, number: int, config: cfg.AgentConfig | None = None) -> resources_pb2.Deployment:
        return await self.runtime.DeployBundle(
            runtime_service_pb2.DeployBundleRequest(bundle=bundle(agent, number, config)),
            metadata=self.service_md,
            timeout=10,
        )

    async def status(self, agent: str) -> resources_pb2.AgentStatus:
        return await self.activation.GetAgentStatus(
            act.GetAgentStatusRequest(name=agent), metadata=self.admin_md, timeout=10
        )

    async def assign(self, agent: str, number: str, request_id: str = "") -> resources_pb2.AgentStatus:
        return await self.activation.AssignPhoneNumber(
            act.AssignPhoneNumberRequest(name=agent, phone_number=number, request_id=request_id),
            metadata=self.admin_md,
            timeout=10,
        )

    async def activate(self, agent: str, request_id: str = "") -> resources_pb2.AgentStatus:
        return await self.activation.ActivateAgent(
            act.ActivateAgentRequest(name=agent, request_id=request_id), metadata=self.admin_md, timeout=10
        )

    async def deactivate(self, agent: str) -> resources_pb2.AgentStatus:
        return await self.activation.DeactivateAgent(
            act.DeactivateAgentRequest(name=agent), metadata=self.admin_md, timeout=10
        )

    async def route(self, called: str, caller: str = "+14155559999") -> resources_pb2.Call:
        return await self.activation.RouteCall(
            act.RouteCallRequest(called_number=called, caller_number=caller), metadata=self.service_md, timeout=10
        )

    async def get_call(self, name: str) -> resources_pb2.Call:
        return await self.activation.GetCall(act.GetCallRequest(name=name), metadata=self.service_md, timeout=10)

    async def end_call(self, name: str) -> resources_pb2.Call:
        return await self.activation.EndCall(act.EndCallRequest(name=name), metadata=self.service_md, timeout=10)

    async def launch(self, agent: str, number: str, version: int = 1) -> resources_pb2.AgentStatus:
        """Deploy, assign a number and activate: an agent taking calls."""
        await self.deploy(agent, version)
        await self.assign(agent, number)
        return await self.activate(agent)


StartReplica = Callable[..., Awaitable[Replica]]


@pytest.fixture
async def start_replica(
    settings: Settings, token: Callable[..., str], events: EventCapture
) -> AsyncIterator[StartReplica]:
    """start_replica() -> a new activation app on port 0 over this test's database and vhost.

    Depends on `events` so speako.events always has a bound queue, as in a deployment (the
    notifier's): otherwise every outbox publish comes back unroutable and the relay retries.
    """
    running: list[Replica] = []

    async def start(**kwargs: Any) -> Replica:
        kwargs.setdefault("pool_max_size", 4)
        app = await create_app(settings, "127.0.0.1:0", **kwargs)
        port = await app.start()
        replica = Replica(
            app,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}"),
            token(["admin"], "acme"),
            token(["service"], "*"),
        )
        running.append(replica)
        return replica

    yield start
    for replica in running:
        await stop_replica(replica)


async def stop_replica(replica: Replica) -> None:
    """Stop one replica (idempotent)."""
    if getattr(replica, "stopped", False):
        return
    replica.stopped = True  # type: ignore[attr-defined]
    await replica.channel.close()
    try:
        await asyncio.wait_for(replica.app.stop(1.0), 30)
    except TimeoutError:
        # Leave a trace of what did not stop, then let the test report its own outcome.
        for task in asyncio.all_tasks():
            print(f"still running after stop: {task!r}", file=sys.stderr)
        raise


class EventCapture:
    """Everything published on speako.events, decoded, in arrival order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Message]] = []
        self._changed = asyncio.Event()

    def on_message(self, routing_key: str, message: Message) -> None:
        self.events.append((routing_key, message))
        self._changed.set()

    def of(self, routing_key: str) -> list[Message]:
        return [m for k, m in self.events if k == routing_key]

    async def wait_for(self, routing_key: str, count: int = 1, timeout: float = 10.0) -> list[Message]:
        async def enough() -> list[Message]:
            while len(self.of(routing_key)) < count:
                self._changed.clear()
                await self._changed.wait()
            return self.of(routing_key)

        return await asyncio.wait_for(enough(), timeout)


@pytest.fixture
async def events(amqp_url: str) -> AsyncIterator[EventCapture]:
    """A queue bound to speako.events (so the outbox's mandatory publishes are routable)."""
    capture = EventCapture()
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    await broker.declare_topology(channel)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(broker.EVENTS_EXCHANGE, routing_key="#")

    seen: set[str] = set()

    async def consume(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with incoming.process():
            # Dedupe on message_id as every consumer does: the outbox delivers at least once (a
            # replica's drain may publish a row another replica handed over and is still confirming).
            if incoming.message_id in seen:
                return
            seen.add(incoming.message_id or "")
            capture.on_message(incoming.routing_key or "", broker.decode(incoming))

    await queue.consume(consume)
    yield capture
    await connection.close()
    await asyncio.sleep(0.05)  # aio-pika's close callbacks run in a task of their own


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Wait until check() is true (a bounded wait, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """Await a call that must fail; return its error."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value
