from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc.aio
import pytest

from tests.conftest import TEST_SECRET
from tests.harness import Platform

PlatformFactory = Callable[..., Awaitable[Platform]]


@pytest.fixture
async def platform_factory(database_url, amqp_url, tmp_path) -> AsyncIterator[PlatformFactory]:
    """Start the four services as separate processes, with extra environment if needed."""
    started: list[Platform] = []

    async def start(**extra_env: str) -> Platform:
        plat = Platform(database_url, amqp_url, TEST_SECRET, tmp_path / f"logs{len(started)}", extra_env)
        started.append(plat)
        await plat.start()
        return plat

    yield start
    await asyncio.gather(*(p.stop() for p in started))


@pytest.fixture
async def platform(platform_factory) -> Platform:
    """The four services running as separate processes on this test's database and vhost."""
    return await platform_factory()


@pytest.fixture
async def channels(platform):
    """One gRPC channel per service."""
    chans = {name: grpc.aio.insecure_channel(platform.addr(name)) for name in platform.services}
    yield chans
    await asyncio.gather(*(c.close() for c in chans.values()))
