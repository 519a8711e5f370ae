"""SIGKILL of a publisher process in the middle of deploys, then a restart: every job finishes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chassis.settings import Settings
from speako.config.v1 import resources_pb2 as config_pb2
from tests.conftest import TEST_SECRET
from tests.integration.publisher.publisher_support import (
    FakeConfig,
    FakeRuntime,
    Harness,
    Outcome,
    make_request,
    make_version,
    pointed_at,
    start_fakes,
)

ROOT = Path(__file__).resolve().parents[3]


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "SPEAKO_ENV": "dev",
        "SPEAKO_AUTH_SECRET": TEST_SECRET,
        "SPEAKO_DATABASE_URL": settings.database_url,
        "SPEAKO_AMQP_URL": settings.amqp_url,
        "SPEAKO_CONFIG_ADDR": settings.config_addr,
        "SPEAKO_RUNTIME_ADDR": settings.runtime_addr,
        "SPEAKO_PUBLISHER_ADDR": "127.0.0.1:0",
        "SPEAKO_METRICS_PORT_BASE": "0",
        "SPEAKO_SHUTDOWN_GRACE_S": "1",
        "SPEAKO_PUBLISHER_WORKERS": "3",
        "SPEAKO_PUBLISHER_LEASE_S": "2",
        "SPEAKO_PUBLISHER_HEARTBEAT_S": "0.5",
        "SPEAKO_PUBLISHER_POLL_INTERVAL_S": "0.2",
        "SPEAKO_PUBLISHER_VERSION_TIMEOUT_S": "1",
        "SPEAKO_PUBLISHER_DEPLOY_ATTEMPT_TIMEOUT_S": "1.5",
        "SPEAKO_PUBLISHER_BACKOFF_MULTIPLIER_S": "0.05",
        "SPEAKO_PUBLISHER_BACKOFF_MAX_S": "0.2",
        "OTEL_TRACES_EXPORTER": "none",
    }


class Process:
    def __init__(self, settings: Settings, log_path: Path) -> None:
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.publisher"],
            cwd=ROOT,
            env=_env(settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
async def fakes(settings: Settings) -> AsyncIterator[tuple[FakeConfig, FakeRuntime, Harness]]:
    config, runtime = FakeConfig(), FakeRuntime()
    server, config_port, runtime_port = await start_fakes(config, runtime)
    harness = Harness(pointed_at(settings, config_port, runtime_port))
    await harness.start()
    yield config, runtime, harness
    await harness.close()
    await server.stop(0)


async def test_publisher_sigkill_during_deploys_then_restart_finishes_every_job(
    fakes: tuple[FakeConfig, FakeRuntime, Harness], tmp_path: Path
) -> None:
    config, runtime, harness = fakes
    # Two deploys finish quickly (the sign that work is under way); the rest take long enough that
    # they are still in progress when the kill lands, however fast the jobs were claimed.
    runtime.script = [Outcome(delay_s=0.05), Outcome(delay_s=0.05)]
    runtime.default = Outcome(delay_s=1.0)
    requests = [make_request(config.add(make_version(1, agent=f"tenants/acme/agents/agent-{i}"))) for i in range(12)]
    for request in requests:
        await harness.publish(request)

    async def deploying() -> bool:
        # PROCESSING jobs whose deploy the runtime has not applied yet: a job already applied may
        # commit PUBLISHED between this check and the kill (seen on a slow machine).
        rows = await harness.jobs()
        applied = {d.version.split("/versions/")[0] for d in runtime.applied}
        in_progress = [r for r in rows if r.state == "PROCESSING" and r.name.split("/publishJobs/")[0] not in applied]
        return len(applied) >= 2 and len(in_progress) >= 2

    first = Process(harness.settings, tmp_path / "publisher-1.log")
    try:
        await harness.wait_for(deploying, 30, "deploys under way")
        first.kill()
    finally:
        first.terminate()
    killed_at = {r.name: r.state for r in await harness.jobs()}
    assert list(killed_at.values()).count("PROCESSING") >= 2, "the kill interrupted deploys"
    # Requested while no publisher runs, with a deadline that passes before one is back.
    late = [
        make_request(config.add(make_version(1, agent=f"tenants/acme/agents/late-{i}")), deadline_s=0.5)
        for i in range(3)
    ]
    for request in late:
        await harness.publish(request)
    requests += late
    await asyncio.sleep(1.0)

    second = Process(harness.settings, tmp_path / "publisher-2.log")
    try:
        rows = [await harness.wait_terminal(r.job.name, timeout=40) for r in requests]
        assert second.terminate() == 0, (tmp_path / "publisher-2.log").read_text()[-3000:]
    finally:
        second.terminate()

    applied = {d.version: d for d in runtime.applied}
    for request, row in zip(requests, rows, strict=True):
        assert row.state in ("PUBLISHED", "FAILED")
        if row.state == "PUBLISHED":
            assert request.job.version in applied
        else:
            assert row.error_reason == "TIMEOUT"
            deployed = applied.get(request.job.version)
            assert deployed is None or deployed.applied_at < row.update_time, "deployed after it was failed"
        # Events: each sequence once (deduped by message_id), only growing, ending terminal.
        events = await harness.wait_events(request.job.name, 2 if row.state == "PUBLISHED" else 1)
        sequences = [e.sequence for e in events]
        assert sequences == sorted(set(sequences)) and sequences[-1] == row.sequence
        assert events[-1].job.state == config_pb2.PublishJob.State.Value(f"STATE_{row.state}")
    assert runtime.max_in_flight_per_version == 1
    assert len(runtime.applied) == len(applied), "no version applied twice"
    # The jobs in progress at the kill were resumed by the new process.
    resumed = [r for r in rows if killed_at.get(r.name) == "PROCESSING"]
    assert resumed and all(r.state == "PUBLISHED" for r in resumed)
