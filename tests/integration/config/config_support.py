"""Helpers and fixtures of the config integration tests: the real service in-process, clients, the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import grpc.aio
import pytest

from chassis.server import GrpcApp
from chassis.settings import Settings
from services.config.main import SCHEMA, create_app
from speako.config.v1 import config_service_pb2 as svc
from speako.config.v1 import config_service_pb2_grpc
from speako.config.v1 import resources_pb2 as r
from tests.conftest import TokenFactory, bearer

TENANT = "acme"
TIMEOUT = 15.0


def valid_config(greeting: str = "Thanks for calling {business_name}.") -> r.AgentConfig:
    """A config the checklist accepts without errors."""
    return r.AgentConfig(
        greetings=r.Greetings(opening_greeting=greeting),
        voice=r.Voice(voice_id="aria", primary_language="en-US"),
        personality=r.Personality(name="Ava", prompt="Be helpful and brief."),
        tools=[r.Tool(id="desk", type=r.Tool.Type.TYPE_TRANSFER_CALL, enabled=True, transfer_number="+14155550123")],
        knowledge=r.Knowledge(faqs=[r.Faq(question="Open Sundays?", answer="No.")]),
        fallback_message="Let me take a message.",
    )


@dataclass
class Client:
    """A ConfigService stub with a caller's token attached to every call."""

    stub: config_service_pb2_grpc.ConfigServiceStub
    metadata: list[tuple[str, str]]

    def __getattr__(self, method: str) -> Any:
        rpc = getattr(self.stub, method)

        def call(request: Any, **kwargs: Any) -> Awaitable[Any]:
            kwargs.setdefault("metadata", self.metadata)
            kwargs.setdefault("timeout", TIMEOUT)
            return rpc(request, **kwargs)

        return call

    async def create_agent(self, agent_id: str, tenant: str = TENANT) -> r.Agent:
        return await self.CreateAgent(
            svc.CreateAgentRequest(parent=f"tenants/{tenant}", agent_id=agent_id, agent=r.Agent(display_name=agent_id))
        )

    async def set_config(self, agent: str, config: r.AgentConfig, etag: str = "") -> r.Draft:
        return await self.UpdateDraft(
            svc.UpdateDraftRequest(draft=r.Draft(name=f"{agent}/draft", config=config, etag=etag))
        )

    async def publish(self, agent: str, **kwargs: Any) -> r.PublishJob:
        return await self.PublishDraft(svc.PublishDraftRequest(name=f"{agent}/draft", **kwargs))


async def start_app(settings: Settings) -> GrpcApp:
    """Start one config process on a free port."""
    app = await create_app(settings, listen_addr="127.0.0.1:0")
    await app.start()
    return app


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[GrpcApp]:
    app = await start_app(settings)
    yield app
    await app.stop(0.5)


@pytest.fixture
async def channel(app: GrpcApp) -> AsyncIterator[grpc.aio.Channel]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    yield channel
    await channel.close()


def client_for(channel: grpc.aio.Channel, token: str) -> Client:
    """A client presenting ``token``."""
    return Client(config_service_pb2_grpc.ConfigServiceStub(channel), bearer(token))


@pytest.fixture
def client(channel: grpc.aio.Channel, token: TokenFactory) -> Client:
    """A publisher of tenant acme, subject alice@acme."""
    return client_for(channel, token(["publisher"], TENANT, "alice@acme"))


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the config schema (to prove what was or was not written)."""
    con = await asyncpg.connect(settings.database_url, server_settings={"search_path": SCHEMA})
    yield con
    await con.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Wait until ``check()`` is true; fail after ``timeout`` seconds (a liveness bound, not a timing claim)."""
    async with asyncio.timeout(timeout):
        while True:
            if await check():
                return
            await asyncio.sleep(0.1)


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """Await a call that must fail; return its error."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value
