"""Shared machinery of the security suite: a platform of real processes driven from sync tests.

hypothesis drives synchronous test functions, so the platform, its channels and every RPC live on
one event loop in a background thread; tests submit coroutines to it with ``LoopThread.run``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import grpc
import grpc.aio
import jwt
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chassis import auth
from speako.activation.v1 import activation_service_pb2_grpc, runtime_service_pb2_grpc
from speako.config.v1 import config_service_pb2_grpc
from speako.notifier.v1 import notifier_service_pb2_grpc
from tests.conftest import AMQP_BASE_URL, PG_ADMIN_URL, TEST_SECRET
from tests.harness import Platform

T = TypeVar("T")

# Generated cases run per full method name (printed in the session summary by conftest.py).
GENERATED_CASES: Counter[str] = Counter()
# Generated cases that hit a known, still open service defect (method: defect -> count).
KNOWN_DEFECT_HITS: Counter[str] = Counter()

OWN = "acme"
OTHER = "globex"
# A wrong secret of a sane length (PyJWT warns about short HMAC keys).
WRONG_SECRET = "not-the-platform-secret-but-just-as-long-0123456789"
CALL_TIMEOUT_S = 10.0
# Outcomes that mean the call was refused by authentication or authorisation.
AUTH_CODES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})


class LoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="security-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 90.0) -> T:
        """Run ``coro`` on the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def mint(roles: list[str] | tuple[str, ...], tenant: str, subject: str = "tester", **kw: Any) -> str:
    """A valid platform token."""
    return auth.mint_token(TEST_SECRET, subject=subject, tenant=tenant, roles=list(roles), **kw)


def raw_token(claims: dict[str, Any], secret: str = TEST_SECRET, algorithm: str = "HS256") -> str:
    """A token with exactly these claims (for malformed-claim cases)."""
    return jwt.encode(claims, secret, algorithm=algorithm)


def bearer(tok: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {tok}"),)


@dataclass
class Stubs:
    """One stub per gRPC service of the platform."""

    config: Any
    notifier: Any
    activation: Any
    runtime: Any

    def for_service(self, service: str) -> Any:
        return {
            "speako.config.v1.ConfigService": self.config,
            "speako.notifier.v1.NotifierService": self.notifier,
            "speako.activation.v1.ActivationService": self.activation,
            "speako.activation.v1.RuntimeService": self.runtime,
        }[service]


@dataclass
class SecurityPlatform:
    """The four services as processes on a database and vhost of their own, plus stubs."""

    rt: LoopThread
    platform: Platform
    stubs: Stubs
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 90.0) -> T:
        return self.rt.run(coro, timeout)

    def health(self) -> dict[str, str]:
        """grpc.health.v1 status of every service (overall server status)."""

        async def probe() -> dict[str, str]:
            out = {}
            for name, channel in self.channels.items():
                try:
                    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
                    out[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                except grpc.aio.AioRpcError as exc:
                    out[name] = exc.code().name
            return out

        return self.run(probe())

    def log_text(self, name: str) -> str:
        return self.platform.services[name].log_text()


async def _create_database() -> str:
    name = f"speako_sec_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def _drop_database(name: str) -> None:
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def start_platform(vhost: str, log_dir: Path, **extra_env: str) -> Iterator[SecurityPlatform]:
    """Generator for a module-scoped fixture: start everything, yield, stop everything."""
    rt = LoopThread()
    db = rt.run(_create_database())
    plat = Platform(
        PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{db}", f"{AMQP_BASE_URL}{vhost}", TEST_SECRET, log_dir, extra_env
    )
    try:
        started = time.monotonic()
        rt.run(plat.start(), timeout=120)
        print(f"\n[security] platform started in {time.monotonic() - started:.1f}s (logs: {log_dir})")

        async def connect() -> dict[str, grpc.aio.Channel]:
            return {n: grpc.aio.insecure_channel(plat.addr(n)) for n in plat.services}

        channels = rt.run(connect())
        stubs = Stubs(
            config=config_service_pb2_grpc.ConfigServiceStub(channels["config"]),
            notifier=notifier_service_pb2_grpc.NotifierServiceStub(channels["notifier"]),
            activation=activation_service_pb2_grpc.ActivationServiceStub(channels["activation"]),
            runtime=runtime_service_pb2_grpc.RuntimeServiceStub(channels["activation"]),
        )
        yield SecurityPlatform(rt, plat, stubs, channels)

        async def close() -> None:
            await asyncio.gather(*(c.close() for c in channels.values()))

        rt.run(close())
    finally:
        rt.run(plat.stop(), timeout=60)
        rt.run(_drop_database(db))
        rt.close()


@dataclass(frozen=True)
class Outcome:
    """What a call produced: OK, or a status code with its message and ErrorInfo reason."""

    code: grpc.StatusCode
    message: str = ""
    reason: str = ""
    response: Any = None
    # Fields named by google.rpc.BadRequest field violations.
    fields: tuple[str, ...] = ()

    @property
    def past_auth(self) -> bool:
        return self.code not in AUTH_CODES

    def __str__(self) -> str:
        return f"{self.code.name}[{self.reason}] {self.message[:200]!r}"


def outcome_of(exc: grpc.aio.AioRpcError) -> Outcome:
    """Decode an RPC error, including the google.rpc ErrorInfo reason in its trailers."""
    reason, fields = "", []
    for key, value in exc.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    reason = info.reason
                elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    fields += [v.field for v in bad.field_violations]
    return Outcome(exc.code(), exc.details() or "", reason, fields=tuple(fields))


async def call_unary(stub: Any, method: str, request: Any, metadata: Any, timeout: float = CALL_TIMEOUT_S) -> Outcome:
    """Call a unary RPC and describe the outcome."""
    try:
        response = await getattr(stub, method)(request, metadata=metadata, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return outcome_of(exc)
    return Outcome(grpc.StatusCode.OK, response=response)


async def call_stream(stub: Any, method: str, request: Any, metadata: Any, timeout: float = 1.5) -> Outcome:
    """Open a server stream, read its first message or run into the (short) deadline."""
    call = getattr(stub, method)(request, metadata=metadata, timeout=timeout)
    try:
        async for _ in call:
            return Outcome(grpc.StatusCode.OK)
        return Outcome(grpc.StatusCode.OK)
    except grpc.aio.AioRpcError as exc:
        return outcome_of(exc)
    finally:
        call.cancel()


async def bounded_gather(coros: list[Coroutine[Any, Any, T]], limit: int = 2) -> list[T]:
    """gather with at most ``limit`` calls in flight: the shared PostgreSQL has few connections
    to spare, and a burst would grow every service's pool."""
    gate = asyncio.Semaphore(limit)

    async def one(coro: Coroutine[Any, Any, T]) -> T:
        async with gate:
            return await coro

    return list(await asyncio.gather(*(one(c) for c in coros)))
