"""Test doubles and a harness for the publisher: fake ConfigService and RuntimeService gRPC
servers on port 0, a broker client that publishes requests and collects job events, and direct
reads of the publisher's job table."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import aio_pika.abc
import asyncpg
import grpc
import grpc.aio
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from chassis import auth, broker
from chassis.server import GrpcApp
from chassis.settings import Settings
from services.config.domain.canonical import content_sha256
from services.publisher.main import create_app
from services.publisher.options import PipelineOptions
from speako.activation.v1 import resources_pb2 as activation_pb2
from speako.activation.v1 import runtime_service_pb2_grpc
from speako.config.v1 import config_service_pb2_grpc
from speako.config.v1 import resources_pb2 as config_pb2
from speako.events.v1 import events_pb2
from tests.conftest import TEST_SECRET

AGENT = "tenants/acme/agents/front-desk"
TERMINAL = ("PUBLISHED", "FAILED", "SUPERSEDED")

FAST = PipelineOptions(
    workers=8,
    prefetch=16,
    lease_s=6.0,
    heartbeat_s=0.5,
    poll_interval_s=0.2,
    # Generous: the machine running the suite may be busy, and a timed-out call is an extra attempt.
    version_timeout_s=3.0,
    deploy_attempt_timeout_s=3.0,
    max_attempts=5,
    backoff_multiplier_s=0.05,
    backoff_max_s=0.2,
)


def make_config(text: str = "Hello from {business_name}") -> config_pb2.AgentConfig:
    return config_pb2.AgentConfig(
        greetings=config_pb2.Greetings(opening_greeting=text),
        personality=config_pb2.Personality(name="Ava", prompt="You are a receptionist."),
        pronunciations={"Acme": "ak-mee"},
    )


def make_version(number: int, agent: str = AGENT, text: str | None = None) -> config_pb2.Version:
    config = make_config(text or f"Hello from {{business_name}}, v{number}")
    return config_pb2.Version(
        name=f"{agent}/versions/{number}", number=number, config=config, content_sha256=content_sha256(config)
    )


def _ts(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def make_request(
    version: config_pb2.Version, *, deadline_s: float = 30.0, job_id: str | None = None
) -> events_pb2.PublishRequested:
    agent = version.name.rsplit("/versions/", 1)[0]
    now = datetime.now(UTC)
    job = config_pb2.PublishJob(
        name=f"{agent}/publishJobs/{job_id or uuid.uuid4()}",
        version=version.name,
        state=config_pb2.PublishJob.STATE_SUBMITTED,
        create_time=_ts(now),
        update_time=_ts(now),
        deadline=_ts(now + timedelta(seconds=deadline_s)),
        changed_sections=["greetings"],
        requester="alice@acme",
        trace_id="0af7651916cd43dd8448eb211c80319c",
    )
    return events_pb2.PublishRequested(job=job, content_sha256=version.content_sha256)


def _status(code: grpc.StatusCode, message: str, field_name: str = "") -> grpc.Status:
    details = []
    if field_name:
        packed = any_pb2.Any()
        packed.Pack(
            error_details_pb2.BadRequest(
                field_violations=[error_details_pb2.BadRequest.FieldViolation(field=field_name, description=message)]
            )
        )
        details.append(packed)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=details))


@dataclass
class Outcome:
    """What a fake answers to one call: OK (after delay_s) or an error status."""

    code: grpc.StatusCode = grpc.StatusCode.OK
    message: str = ""
    field: str = ""
    delay_s: float = 0.0


def _check_service_token(context: grpc.aio.ServicerContext) -> str:
    metadata = dict(context.invocation_metadata() or ())
    header = metadata.get("authorization", "")
    principal = auth.verify_token(TEST_SECRET, header.removeprefix("Bearer "))
    assert "service" in principal.roles and principal.tenant == "*", principal
    return principal.subject


class FakeConfig(config_service_pb2_grpc.ConfigServiceServicer):
    """ConfigService.GetVersion over a dict; scripted failures per version."""

    def __init__(self) -> None:
        self.versions: dict[str, config_pb2.Version] = {}
        self.script: dict[str, list[Outcome]] = {}
        self.calls: list[str] = []

    def add(self, version: config_pb2.Version) -> config_pb2.Version:
        self.versions[version.name] = version
        return version

    async def GetVersion(self, request: Any, context: grpc.aio.ServicerContext) -> config_pb2.Version:
        _check_service_token(context)
        self.calls.append(request.name)
        script = self.script.get(request.name)
        outcome = script.pop(0) if script else Outcome()
        if outcome.delay_s:
            await asyncio.sleep(outcome.delay_s)
        if outcome.code is not grpc.StatusCode.OK:
            await context.abort_with_status(_status(outcome.code, outcome.message))
        version = self.versions.get(request.name)
        if version is None:
            await context.abort_with_status(_status(grpc.StatusCode.NOT_FOUND, f"{request.name} not found"))
        return version


@dataclass
class Deploy:
    """One DeployBundle the fake runtime applied."""

    version: str
    sha256: str
    applied_at: datetime
    subject: str


@dataclass
class FakeRuntime(runtime_service_pb2_grpc.RuntimeServiceServicer):
    """RuntimeService.DeployBundle: idempotent per version, refuses older than live, scripted faults.

    Like a well-behaved server it applies a deploy only while its caller still waits for it (a
    client deadline that passed during a slow deploy means nothing is applied).
    """

    default: Outcome = field(default_factory=Outcome)
    script: list[Outcome] = field(default_factory=list)
    live: dict[str, int] = field(default_factory=dict)
    applied: list[Deploy] = field(default_factory=list)
    calls: list[tuple[str, datetime]] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    max_in_flight_per_version: int = 0
    # Which endpoint served each call (see serve_runtime), to tell replicas apart.
    endpoints: list[str] = field(default_factory=list)

    async def DeployBundle(self, request: Any, context: grpc.aio.ServicerContext) -> activation_pb2.Deployment:
        subject = _check_service_token(context)
        bundle = request.bundle
        self.calls.append((bundle.version, datetime.now(UTC)))
        self.in_flight[bundle.version] = self.in_flight.get(bundle.version, 0) + 1
        self.max_in_flight_per_version = max(self.max_in_flight_per_version, self.in_flight[bundle.version])
        try:
            outcome = self.script.pop(0) if self.script else self.default
            if outcome.delay_s:
                await asyncio.sleep(outcome.delay_s)
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "caller gave up")
            if outcome.code is not grpc.StatusCode.OK:
                await context.abort_with_status(_status(outcome.code, outcome.message, outcome.field))
            if content_sha256(bundle.config) != bundle.content_sha256:
                await context.abort_with_status(
                    _status(grpc.StatusCode.INVALID_ARGUMENT, "bundle hash mismatch", "bundle.content_sha256")
                )
            number = int(bundle.version.rsplit("/", 1)[1])
            live = self.live.get(bundle.agent, 0)
            if live > number:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"version {live} of {bundle.agent} is live")
            if live < number:
                self.live[bundle.agent] = number
                self.applied.append(Deploy(bundle.version, bundle.content_sha256, datetime.now(UTC), subject))
            return activation_pb2.Deployment(
                agent=bundle.agent,
                version=bundle.version,
                bundle_sha256=bundle.content_sha256,
                live_version=f"{bundle.agent}/versions/{self.live[bundle.agent]}",
            )
        finally:
            self.in_flight[bundle.version] -= 1


async def start_fakes(config: FakeConfig, runtime: FakeRuntime) -> tuple[grpc.aio.Server, int, int]:
    """Serve both fakes on port 0; returns (server, config_port, runtime_port)."""
    config_server = grpc.aio.server()
    config_service_pb2_grpc.add_ConfigServiceServicer_to_server(config, config_server)
    runtime_service_pb2_grpc.add_RuntimeServiceServicer_to_server(runtime, config_server)
    port = config_server.add_insecure_port("127.0.0.1:0")
    await config_server.start()
    return config_server, port, port


class _TaggedRuntime(runtime_service_pb2_grpc.RuntimeServiceServicer):
    def __init__(self, runtime: FakeRuntime, tag: str) -> None:
        self._runtime = runtime
        self._tag = tag

    async def DeployBundle(self, request: Any, context: grpc.aio.ServicerContext) -> activation_pb2.Deployment:
        self._runtime.endpoints.append(self._tag)
        return await self._runtime.DeployBundle(request, context)


async def serve_runtime(runtime: FakeRuntime, tag: str) -> tuple[grpc.aio.Server, int]:
    """Another endpoint of the same fake runtime whose calls are recorded under tag."""
    server = grpc.aio.server()
    runtime_service_pb2_grpc.add_RuntimeServiceServicer_to_server(_TaggedRuntime(runtime, tag), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def unused_port() -> int:
    """A port nothing listens on (for an unreachable runtime)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Row:
    """A publisher job row as tests see it."""

    name: str
    state: str
    attempts: int
    error_reason: str | None
    error_message: str
    error_field: str
    sequence: int
    update_time: datetime
    lease_owner: str | None


class Harness:
    """Broker + database access for one test's vhost and database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None
        self.events: list[tuple[str, events_pb2.JobStateChanged, str]] = []
        self.event_headers: dict[str, dict[str, str]] = {}
        self.db: asyncpg.Connection | None = None

    async def start(self) -> None:
        self.connection = await broker.connect(self.settings.amqp_url, "publisher-test")
        self.channel = await self.connection.channel(publisher_confirms=True)
        await broker.declare_topology(self.channel)
        queue = await self.channel.declare_queue("test.job-events", durable=False, exclusive=True)
        await queue.bind(broker.EVENTS_EXCHANGE, routing_key="job.#")
        await queue.consume(self._on_event, no_ack=True)

    async def _on_event(self, incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        message = broker.decode(incoming)
        assert isinstance(message, events_pb2.JobStateChanged)
        self.events.append((incoming.routing_key or "", message, incoming.message_id or ""))
        self.event_headers[incoming.message_id or ""] = broker.string_headers(incoming.headers)

    async def close(self) -> None:
        if self.db is not None:
            await self.db.close()
        if self.connection is not None:
            await self.connection.close()

    async def publish(
        self,
        request: events_pb2.PublishRequested | None = None,
        *,
        message_id: str | None = None,
        raw: aio_pika.Message | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        assert self.channel is not None
        message = raw or broker.encode(request, message_id=message_id, headers=headers)  # type: ignore[arg-type]
        exchange = await self.channel.get_exchange(broker.PUBLISH_EXCHANGE)
        await exchange.publish(message, routing_key=broker.PUBLISH_REQUESTED, mandatory=True, timeout=10)

    async def _db(self) -> asyncpg.Connection:
        if self.db is None:
            self.db = await asyncpg.connect(self.settings.database_url)
        return self.db

    async def job(self, name: str) -> Row | None:
        con = await self._db()
        try:
            row = await con.fetchrow(
                "SELECT name, state, attempts, error_reason, error_message, error_field, sequence, update_time, "
                "lease_owner FROM publisher.jobs WHERE name = $1",
                name,
            )
        except asyncpg.UndefinedTableError:
            return None
        return Row(**dict(row)) if row else None

    async def jobs(self) -> list[Row]:
        con = await self._db()
        try:
            rows = await con.fetch(
                "SELECT name, state, attempts, error_reason, error_message, error_field, sequence, update_time, "
                "lease_owner FROM publisher.jobs ORDER BY name"
            )
        except asyncpg.UndefinedTableError:
            return []  # the publisher has not migrated yet
        return [Row(**dict(r)) for r in rows]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def wait_terminal(self, name: str, timeout: float = 15.0) -> Row:
        async def done() -> Row | None:
            row = await self.job(name)
            return row if row and row.state in TERMINAL else None

        return await self.wait_for(done, timeout, f"{name} to finish")

    async def wait_events(self, name: str, count: int, timeout: float = 15.0) -> list[events_pb2.JobStateChanged]:
        def seen() -> list[events_pb2.JobStateChanged] | None:
            mine = self.events_for(name)
            return mine if len(mine) >= count else None

        return await self.wait_for(seen, timeout, f"{count} events of {name}")

    def events_for(self, name: str) -> list[events_pb2.JobStateChanged]:
        # Consumers dedupe on message_id (the outbox may publish a row twice across a crash).
        seen: set[str] = set()
        out = []
        for _key, event, message_id in list(self.events):
            if event.job.name == name and message_id not in seen:
                seen.add(message_id)
                out.append(event)
        return out

    async def dead_letters(self) -> int:
        assert self.channel is not None
        queue = await self.channel.declare_queue(
            f"{broker.PUBLISH_REQUESTS_QUEUE}.dead-letter", durable=True, arguments={"x-queue-type": "quorum"}
        )
        return queue.declaration_result.message_count or 0


def pointed_at(settings: Settings, port_config: int, port_runtime: int) -> Settings:
    """The fixture's settings pointed at the fakes."""
    return replace(
        settings,
        config_addr=f"127.0.0.1:{port_config}",
        runtime_addr=f"127.0.0.1:{port_runtime}",
        publisher_addr="127.0.0.1:0",
    )


__all__ = [
    "AGENT",
    "FAST",
    "TERMINAL",
    "Deploy",
    "FakeConfig",
    "FakeRuntime",
    "Harness",
    "Outcome",
    "Row",
    "World",
    "make_request",
    "make_version",
    "pointed_at",
    "serve_runtime",
    "start_fakes",
    "unused_port",
]


@dataclass
class World:
    settings: Settings
    config: FakeConfig
    runtime: FakeRuntime
    harness: Harness
    apps: list[GrpcApp]

    async def start_publisher(self, options: PipelineOptions = FAST, **overrides: object) -> GrpcApp:
        """Start a publisher app on port 0 with these settings overrides (e.g. runtime_addr)."""
        app = await create_app(replace(self.settings, **overrides), "127.0.0.1:0", options=options)  # type: ignore[arg-type]
        await app.start()
        self.apps.append(app)
        return app
