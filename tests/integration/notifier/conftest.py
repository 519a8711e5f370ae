"""Fixtures of the notifier integration tests (real PostgreSQL and RabbitMQ, per-test db and vhost)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.notifier.notifier_support import Cluster, Events, open_events


@pytest.fixture
async def cluster(settings) -> AsyncIterator[Cluster]:
    c = Cluster(settings)
    yield c
    await c.close()


@pytest.fixture
async def events(amqp_url) -> AsyncIterator[Events]:
    connection, publisher = await open_events(amqp_url)
    yield publisher
    await connection.close()
