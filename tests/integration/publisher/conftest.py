"""Fixtures of the publisher's integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chassis.settings import Settings
from tests.integration.publisher.publisher_support import (
    FakeConfig,
    FakeRuntime,
    Harness,
    World,
    pointed_at,
    start_fakes,
)


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    config, runtime = FakeConfig(), FakeRuntime()
    server, config_port, runtime_port = await start_fakes(config, runtime)
    harness = Harness(pointed_at(settings, config_port, runtime_port))
    await harness.start()
    w = World(harness.settings, config, runtime, harness, [])
    yield w
    for app in w.apps:
        await app.stop(0.5)
    await harness.close()
    await server.stop(0)
