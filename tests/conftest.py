"""Fixtures shared by every test layer: an isolated database and broker vhost per test.

Tests talk to the real PostgreSQL and RabbitMQ. Each test gets its own empty database and a
RabbitMQ vhost leased to it alone and emptied first, so tests never see each other's data or
queues and may run beside other runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
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


def _rabbitmqctl_eval(expression: str, attempts: int = 3) -> None:
    # rabbitmqctl is a script around an Erlang VM: on a timeout the whole process group must go,
    # or the orphaned VM keeps its distribution name and later CLI calls fail.
    for attempt in range(attempts):
        proc = subprocess.Popen(
            ["rabbitmqctl", "eval", expression],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            continue
        if proc.returncode == 0:
            return
        if attempt == attempts - 1:
            raise RuntimeError(f"rabbitmqctl eval failed: {err.decode(errors='replace')[-500:]}")
    raise RuntimeError("rabbitmqctl eval timed out")


class VhostPool:
    """A fixed set of RabbitMQ vhosts reused by every test run on this machine.

    Creating a vhost per test slows the broker down as vhosts (and their quorum queues) pile up,
    so tests lease one of a few long-lived vhosts instead: a file lock makes the lease exclusive
    across concurrent pytest processes, and each lease starts by deleting every queue in the vhost.
    """

    SLOTS = 8
    PREFIX = "speako-test-slot"

    def __init__(self) -> None:
        self._ensured = False

    def _ensure(self) -> None:
        if self._ensured:
            return
        # rabbit_vhost:add is idempotent for an existing vhost; one CLI call creates all slots.
        _rabbitmqctl_eval(
            " ".join(
                f'rabbit_vhost:add(<<"{self.PREFIX}-{n}">>, <<"speako-test">>), '
                f'rabbit_auth_backend_internal:set_permissions(<<"guest">>, <<"{self.PREFIX}-{n}">>, '
                f'<<".*">>, <<".*">>, <<".*">>, <<"speako-test">>),'
                for n in range(self.SLOTS)
            )
            + " ok."
        )
        self._ensured = True

    @contextlib.contextmanager
    def lease(self) -> Iterator[str]:
        """Hold an emptied vhost for the duration of one test."""
        self._ensure()
        deadline = time.monotonic() + 600
        while True:
            for n in range(self.SLOTS):
                lock = open(f"/tmp/{self.PREFIX}-{n}.lock", "w")
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    lock.close()
                    continue
                vhost = f"{self.PREFIX}-{n}"
                try:
                    _empty_vhost(vhost)
                    yield vhost
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
                    lock.close()
                return
            if time.monotonic() > deadline:
                raise RuntimeError("no free RabbitMQ test vhost for 10 minutes")
            time.sleep(0.2)


def _empty_vhost(vhost: str) -> None:
    # Queues of earlier tests go (with their bindings); exchanges stay, being the same everywhere.
    _rabbitmqctl_eval(
        f'[rabbit_amqqueue:delete(Q, false, false, <<"speako-test">>) || Q <- rabbit_amqqueue:list(<<"{vhost}">>)], ok.'
    )


@pytest.fixture(scope="session")
def vhost_pool() -> VhostPool:
    return VhostPool()


@pytest.fixture
def amqp_url(vhost_pool: VhostPool) -> Iterator[str]:
    """AMQP URL of an emptied vhost leased to this test alone."""
    with vhost_pool.lease() as vhost:
        yield f"{AMQP_BASE_URL}{vhost}"


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
