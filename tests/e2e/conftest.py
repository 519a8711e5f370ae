from __future__ import annotations

import asyncio

import grpc.aio
import pytest

from tests.conftest import TEST_SECRET
from tests.harness import Platform


@pytest.fixture
async def platform(database_url, amqp_url, tmp_path):
    """The four services running as separate processes on this test's database and vhost."""
    plat = Platform(database_url, amqp_url, TEST_SECRET, tmp_path / "logs")
    try:
        await plat.start()
        yield plat
    finally:
        await plat.stop()


@pytest.fixture
async def channels(platform):
    """One gRPC channel per service."""
    chans = {name: grpc.aio.insecure_channel(platform.addr(name)) for name in platform.services}
    yield chans
    await asyncio.gather(*(c.close() for c in chans.values()))
