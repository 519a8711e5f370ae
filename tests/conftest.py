"""Fixtures shared by every test layer: an isolated database and broker vhost per test.

Tests talk to the real PostgreSQL and RabbitMQ. Each test gets its own empty database and its own
RabbitMQ vhost, so tests never see each other's data or queues and may run beside other runs.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace

import asyncpg
import pytest

from chassis import auth
from chassis.settings import DEV_AUTH_SECRET, Settings

PG_ADMIN_URL = os.environ.get("SPEAKO_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE_URL = os.environ.get("SPEAKO_TEST_AMQP_BASE_URL", "amqp://guest:guest@127.0.0.1:5672/")
TEST_SECRET = DEV_AUTH_SECRET


def _rabbitmqctl_eval(expression: str) -> None:
    subprocess.run(["rabbitmqctl", "eval", expression], check=True, capture_output=True, timeout=60)


class VhostPool:
    """Creates RabbitMQ vhosts in batches (one rabbitmqctl call each) and deletes them at the end."""

    BATCH = 12

    def __init__(self) -> None:
        self._prefix = f"speako-test-{uuid.uuid4().hex[:8]}"
        self._free: list[str] = []
        self._made: list[str] = []

    def take(self) -> str:
        if not self._free:
            names = [f"{self._prefix}-{len(self._made) + i}" for i in range(self.BATCH)]
            _rabbitmqctl_eval(
                " ".join(
                    f'rabbit_vhost:add(<<"{n}">>, <<"speako-test">>), '
                    f'rabbit_auth_backend_internal:set_permissions(<<"guest">>, <<"{n}">>, '
                    f'<<".*">>, <<".*">>, <<".*">>, <<"speako-test">>),'
                    for n in names
                )
                + " ok."
            )
            self._made += names
            self._free += names
        return self._free.pop()

    def delete_all(self) -> None:
        if self._made:
            _rabbitmqctl_eval(
                " ".join(f'rabbit_vhost:delete(<<"{n}">>, <<"speako-test">>),' for n in self._made) + " ok."
            )


@pytest.fixture(scope="session")
def vhost_pool() -> Iterator[VhostPool]:
    pool = VhostPool()
    yield pool
    pool.delete_all()


@pytest.fixture
def amqp_url(vhost_pool: VhostPool) -> str:
    """AMQP URL of a fresh, empty vhost for this test."""
    return f"{AMQP_BASE_URL}{vhost_pool.take()}"


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """URL of a fresh, empty database for this test (dropped afterwards)."""
    name = f"speako_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def settings(database_url: str, amqp_url: str) -> Settings:
    """Settings for in-process services of this test (ports chosen by each test)."""
    return replace(
        Settings(),
        database_url=database_url,
        amqp_url=amqp_url,
        auth_secret=TEST_SECRET,
        dev_mode=True,
        shutdown_grace_s=2.0,
        metrics_ports={},
    )


TokenFactory = Callable[..., str]


@pytest.fixture
def token() -> TokenFactory:
    """Mint a JWT: token(roles=["editor"], tenant="acme", subject="alice@acme")."""

    def mint(roles: list[str] | tuple[str, ...] = ("admin",), tenant: str = "acme", subject: str = "tester") -> str:
        return auth.mint_token(TEST_SECRET, subject=subject, tenant=tenant, roles=roles)

    return mint


def bearer(tok: str) -> list[tuple[str, str]]:
    """Call metadata carrying a token."""
    return [("authorization", f"Bearer {tok}")]
