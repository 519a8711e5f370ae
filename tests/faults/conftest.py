"""Fixtures of the fault-injection suite: one platform of separate processes for the session.

The platform deploys through a FakeRuntime (SPEAKO_RUNTIME_ADDR) that forwards to the real
activation service unless a scenario tells it to misbehave. Each scenario publishes into its own
tenant, so its checker sees only its own jobs. After every scenario PostgreSQL and RabbitMQ are
restored if down and every service process is restarted if it is not serving.

The suite restarts the shared servers, so it runs only when selected: ``pytest -m faults tests/faults``
(``make test-faults``). Results go to docs/RELIABILITY.md at the end of the session.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from speako.cli.probe import service_status, wait_until_serving
from tests.conftest import AMQP_BASE_URL, PG_ADMIN_URL, TEST_SECRET
from tests.faults import servers
from tests.faults.checker import RESULTS, Addrs, connect_db
from tests.faults.fake_runtime import FakeRuntime
from tests.harness import SERVICES, Platform, ServiceProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "RELIABILITY.md"
FAULTS_DIR = Path(__file__).resolve().parent

# Short timers so that every scenario finishes within its bound (the guarantees hold for any values).
PLATFORM_ENV = {
    "SPEAKO_PUBLISH_DEADLINE_S": "30",
    "SPEAKO_NOTIFIER_HEARTBEAT_S": "1",
    "SPEAKO_PUBLISHER_LEASE_S": "6",
    "SPEAKO_PUBLISHER_HEARTBEAT_S": "2",
    "SPEAKO_PUBLISHER_DEPLOY_ATTEMPT_TIMEOUT_S": "3",
    "SPEAKO_PUBLISHER_VERSION_TIMEOUT_S": "3",
    "SPEAKO_PUBLISHER_BACKOFF_MAX_S": "2",
    "SPEAKO_PUBLISHER_POLL_INTERVAL_S": "0.5",
    "SPEAKO_SHUTDOWN_GRACE_S": "5",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Never run these scenarios by accident: they restart the shared PostgreSQL and RabbitMQ."""
    if "faults" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="fault injection restarts shared servers; run `make test-faults`")
    for item in items:
        if FAULTS_DIR in Path(str(item.fspath)).parents:
            item.add_marker(skip)


class FaultPlatform:
    """The running platform, its fake runtime, and helpers to replace processes."""

    def __init__(self, plat: Platform, runtime: FakeRuntime, database_url: str, amqp_url: str) -> None:
        self.plat = plat
        self.runtime = runtime
        self.database_url = database_url
        self.amqp_url = amqp_url
        self.extra: list[ServiceProcess] = []

    @property
    def addrs(self) -> Addrs:
        """Public addresses and the database (for the publisher cross-check)."""
        return Addrs(
            self.plat.addr("config"), self.plat.addr("notifier"), self.plat.addr("activation"), self.database_url
        )

    def service(self, name: str) -> ServiceProcess:
        """The process of one service."""
        return self.plat.services[name]

    async def restart(self, name: str, attempts: int = 3) -> None:
        """Start a stopped or killed service again and wait until it serves.

        Like a supervisor, a process that exits during start-up (say, the database was full) is
        started again, up to ``attempts`` times.
        """
        proc = self.service(name)
        for _ in range(attempts):
            await proc.start()
            if await _serving_or_exited(proc, 60):
                return
            await proc.stop()
        raise RuntimeError(f"{name} did not come back:\n{proc.log_text()[-3000:]}")

    async def wait_serving(self, names: list[str] | tuple[str, ...] = SERVICES, timeout: float = 60) -> None:
        """Wait until the named services answer health checks with SERVING."""
        statuses = await wait_until_serving([self.plat.addr(n) for n in names], timeout)
        bad = {a: s for a, s in statuses.items() if s != "SERVING"}
        if bad:
            raise RuntimeError(f"not serving: {bad}")

    async def add_replica(self, name: str) -> ServiceProcess:
        """Start one more process of a service (another replica on its own port)."""
        base = self.service(name)
        port = free_port()
        env = dict(base.env)
        env[f"SPEAKO_{name.upper()}_ADDR"] = f"127.0.0.1:{port}"
        replica = ServiceProcess(name, f"127.0.0.1:{port}", env, base.log_path.with_name(f"{name}-{port}.log"))
        await replica.start()
        self.extra.append(replica)
        statuses = await wait_until_serving([replica.addr], 60)
        if statuses[replica.addr] != "SERVING":
            raise RuntimeError(f"replica of {name} not serving: {replica.log_text()[-2000:]}")
        return replica

    async def heal(self) -> None:
        """Servers up, extra replicas gone, every service process alive and serving."""
        await asyncio.to_thread(servers.ensure_running)
        for replica in self.extra:
            replica.send(signal.SIGCONT)  # in case a scenario left it stopped
            await replica.stop()
        self.extra.clear()
        for name, proc in self.plat.services.items():
            proc.send(signal.SIGCONT)
            if proc.proc is None or proc.proc.returncode is not None:
                await self.restart(name)
        await self.wait_serving()
        self.runtime.behaviours.clear()


async def _serving_or_exited(proc: ServiceProcess, timeout: float) -> bool:
    """True once the process serves; False if it exits (or never serves) first."""
    end = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < end:
        if proc.proc is None or proc.proc.returncode is not None:
            return False
        if await service_status(proc.addr, 1.0) == "SERVING":
            return True
        await asyncio.sleep(0.2)
    return False


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fault_platform(vhost_pool, tmp_path_factory) -> AsyncIterator[FaultPlatform]:
    """The four services as separate processes on a database and vhost of their own."""
    await asyncio.to_thread(servers.ensure_running)
    name = f"speako_faults_{uuid.uuid4().hex[:10]}"
    admin = await connect_db(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    database_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    lease = vhost_pool.lease()
    amqp_url = f"{AMQP_BASE_URL}{lease.__enter__()}"
    runtime = FakeRuntime()
    runtime_addr = await runtime.start()
    plat = Platform(
        database_url,
        amqp_url,
        TEST_SECRET,
        tmp_path_factory.mktemp("fault-logs"),
        {**PLATFORM_ENV, "SPEAKO_RUNTIME_ADDR": runtime_addr},
    )
    runtime.forward_to(plat.addr("activation"))
    try:
        await plat.start(timeout=90)
        yield FaultPlatform(plat, runtime, database_url, amqp_url)
    finally:
        await asyncio.to_thread(servers.ensure_running)
        await plat.stop()
        await runtime.stop()
        lease.__exit__(None, None, None)
        admin = await connect_db(PG_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def fp(fault_platform: FaultPlatform) -> AsyncIterator[FaultPlatform]:
    """The session's platform, healed after the scenario whatever it did."""
    await fault_platform.heal()
    try:
        yield fault_platform
    finally:
        await fault_platform.heal()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the table of this run's scenarios to docs/RELIABILITY.md."""
    if not RESULTS:
        return
    lines = [
        "# Reliability",
        "",
        "Generated by `make test-faults` (`pytest -m faults tests/faults`) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC} ({os.cpu_count()} cores). Each scenario runs the four services",
        "as separate processes on the real PostgreSQL 15 and RabbitMQ 3.10, injects the fault during a burst",
        "of publishes, and checks DESIGN.md section 6 with one checker (`tests/faults/checker.py`):",
        "",
        "- **lost**: accepted by `PublishDraft` but not terminal within the bound (75 s; job deadline 30 s) in",
        "  the notifier's read model or the publisher's table, never seen terminal on the tenant's resumed",
        "  `WatchPublishJobs` stream, or FAILED without its System notification;",
        "- **duplicated**: one `request_id` answered with two jobs, two different terminal outcomes for a job",
        "  (on the stream, or notifier vs publisher), or more than one notification for a failed job;",
        "- **backwards**: a job state regressing on the stream, an agent's live version decreasing between",
        "  samples (every 0.25 s), or ending below the newest version reported PUBLISHED;",
        "- **recovery**: from the moment the fault is cleared (process restarted, server back) until every",
        "  accepted job is terminal.",
        "",
        "Timers of the suite's platform: job deadline 30 s, publisher lease 6 s (heartbeat 2 s), deploy attempt",
        "timeout 3 s, notifier heartbeat 1 s, shutdown grace 5 s.",
        "",
        "| scenario | fault | publishes | lost | duplicated | backwards | recovery | outcomes | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in RESULTS:
        recovery = "-" if row.recovery_s is None else f"{row.recovery_s:.1f} s"
        outcomes = ", ".join(f"{k.lower()} {v}" for k, v in sorted(row.outcomes.items()))
        lines.append(
            f"| {row.scenario} | {row.fault} | {row.publishes} | {row.lost} | {row.duplicated} | {row.backwards} "
            f"| {recovery} | {outcomes} | {'pass' if row.ok else '**FAIL**'} |"
        )
    notes = [(row.scenario, n) for row in RESULTS for n in row.notes]
    if notes:
        lines += ["", "## Notes from the run", ""]
        lines += [f"- {scenario}: {note}" for scenario, note in notes]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")
