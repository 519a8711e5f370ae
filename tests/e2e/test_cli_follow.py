"""Following publish jobs from the command line: failure, Ctrl-C, and the resumable tenant stream."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest

from tests.conftest import TEST_SECRET
from tests.e2e.test_cli_workflow import AGENT, FULL, Cli, write_config
from tests.harness import ROOT, Platform, free_port


async def _platform(database_url: str, amqp_url: str, tmp_path, **env: str) -> AsyncIterator[Platform]:
    plat = Platform(database_url, amqp_url, TEST_SECRET, tmp_path / "logs", extra_env=env)
    try:
        await plat.start()
        yield plat
    finally:
        await plat.stop()


@pytest.fixture
async def unreachable_runtime(database_url, amqp_url, tmp_path):
    """The platform with its deploy target pointing at a closed port and a short publish deadline."""
    async for plat in _platform(
        database_url,
        amqp_url,
        tmp_path,
        SPEAKO_RUNTIME_ADDR=f"127.0.0.1:{free_port()}",
        SPEAKO_PUBLISH_DEADLINE_S="6",
    ):
        yield plat


@pytest.fixture
async def quick_heartbeats(database_url, amqp_url, tmp_path):
    """The platform with the notifier sending keep-alives every 0.3 s."""
    async for plat in _platform(database_url, amqp_url, tmp_path, SPEAKO_NOTIFIER_HEARTBEAT_S="0.3"):
        yield plat


class CliProcess:
    """`python -m speako.cli ...` as a real process, read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, platform: Platform, token: str, *args: str) -> CliProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPEAKO_")}
        env.update(
            SPEAKO_CONFIG_ADDR=platform.addr("config"),
            SPEAKO_NOTIFIER_ADDR=platform.addr("notifier"),
            SPEAKO_ACTIVATION_ADDR=platform.addr("activation"),
            SPEAKO_TOKEN=token,
            PYTHONUNBUFFERED="1",
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "speako.cli", *args,
            env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(proc)

    async def read_until(self, needle: str, timeout: float = 30.0) -> list[str]:
        """Lines of stdout up to and including the first one containing ``needle``."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"stdout ended before {needle!r}: {self.lines}")
                self.lines.append(raw.decode().rstrip("\n"))
                if needle in self.lines[-1]:
                    return self.lines

    async def interrupt(self) -> tuple[int, str, str]:
        """Ctrl-C, then the exit code, the rest of stdout and all of stderr."""
        self.proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(self.proc.communicate(), 20)
        return self.proc.returncode or 0, out.decode(), err.decode()


async def test_failed_publish_shows_reason_and_exits_non_zero(unreachable_runtime, token, tmp_path):
    cli = Cli(unreachable_runtime, token(["admin"], "acme", "alice@acme"))
    cli.ok("agents", "create", AGENT)
    cli.ok("draft", "edit", AGENT, "-f", write_config(tmp_path))

    failed = cli("publish", AGENT)
    assert failed.exit_code == 1, failed.output
    assert "Processing" in failed.stdout
    assert "Failed after" in failed.stdout
    assert "DEPLOY_UNAVAILABLE" in failed.stdout or "TIMEOUT" in failed.stdout
    assert "draft is unchanged" in failed.stderr
    job = cli.json("jobs", "list", AGENT, "--state", "failed")["publish_jobs"][0]
    assert job["error"]["message"]
    # The draft is untouched and nothing went live.
    assert cli.json("draft", "show", AGENT)["config"]["voice"]["primary_language"] == "en-US"
    assert cli.json("agents", "status", AGENT)["status"].get("live_version", "") == ""


async def test_ctrl_c_stops_following_not_the_job(unreachable_runtime, token, tmp_path):
    tok = token(["admin"], "acme", "alice@acme")
    cli = Cli(unreachable_runtime, tok)
    cli.ok("agents", "create", AGENT)
    cli.ok("draft", "edit", AGENT, "-f", write_config(tmp_path))

    proc = await CliProcess.start(unreachable_runtime, tok, "publish", AGENT)
    await proc.read_until("Processing")
    code, _, err = await proc.interrupt()
    assert code == 130
    assert "Stopped following; the publish job goes on" in err
    assert "Traceback" not in err
    job_line = next(line for line in proc.lines if line.startswith("job "))
    job_name = job_line.removeprefix("job ")
    assert f"speako jobs watch {job_name}" in err

    # The job went on without us: watching it again follows it to its end.
    resumed = cli("jobs", "watch", job_name)
    assert resumed.exit_code == 1, resumed.output
    assert "Failed after" in resumed.stdout


async def test_tenant_stream_prints_updates_and_resumes_without_gaps(quick_heartbeats, token, tmp_path):
    tok = token(["admin"], "acme", "alice@acme")
    cli = Cli(quick_heartbeats, tok)
    cli.ok("agents", "create", AGENT)
    cli.ok("draft", "edit", AGENT, "-f", write_config(tmp_path))

    watcher = await CliProcess.start(quick_heartbeats, tok, "jobs", "watch", "acme", "-o", "json", "--heartbeats")
    # A heartbeat proves the stream is open, so the publish below cannot slip past it.
    first = json.loads((await watcher.read_until('"heartbeat": true'))[-1])
    published = cli.ok("publish", AGENT)
    assert "Published version 1" in published.stdout
    await watcher.read_until("STATE_PUBLISHED")
    code, _, err = await watcher.interrupt()
    assert code == 130
    assert "--resume-token" in err

    updates = [json.loads(line) for line in watcher.lines]
    states = [u["job"]["state"] for u in updates if not u.get("heartbeat")]
    assert states == ["STATE_SUBMITTED", "STATE_PROCESSING", "STATE_PUBLISHED"]

    # Resuming after the first heartbeat replays the same updates, in order.
    replay = cli("jobs", "watch", "acme", "--resume-token", first["resume_token"], "--max-time", "2", "-o", "json")
    assert replay.exit_code == 0, replay.output
    replayed = [json.loads(line) for line in replay.stdout.splitlines()]
    assert [u["job"]["state"] for u in replayed] == states
    assert all(u["job"]["name"].startswith(f"{FULL}/publishJobs/") for u in replayed)

    table = cli("jobs", "watch", "acme", "--resume-token", first["resume_token"], "--max-time", "1")
    assert table.exit_code == 0
    assert "PUBLISHED" in table.stdout and "acme/front-desk" in table.stdout

    too_old = cli("jobs", "watch", "acme", "--resume-token", "garbage", "--max-time", "2")
    assert too_old.exit_code == 1
    assert too_old.stderr.strip().splitlines()[-1].startswith("error: INVALID_ARGUMENT: resume_token")
