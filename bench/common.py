"""Shared pieces of the benchmarks: scratch database and vhost, statistics, tokens, machine facts."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from chassis import auth
from chassis.server import run_event_loop
from chassis.settings import DEV_AUTH_SECRET, event_loop_from

PG_ADMIN_URL = os.environ.get("SPEAKO_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE_URL = os.environ.get("SPEAKO_BENCH_AMQP_BASE_URL", "amqp://guest:guest@127.0.0.1:5672/")
SECRET = DEV_AUTH_SECRET


def token(roles: Sequence[str] = ("admin",), tenant: str = "bench", subject: str = "bench@speako") -> str:
    """A JWT for the benchmark's calls."""
    return auth.mint_token(SECRET, subject=subject, tenant=tenant, roles=list(roles), ttl_s=3600)


def bearer(tok: str) -> list[tuple[str, str]]:
    """Call metadata carrying a token."""
    return [("authorization", f"Bearer {tok}")]


def run_server(main: Coroutine[Any, Any, None]) -> None:
    """Run a bench server process (a service, or a floor's bare server) on the services' event loop.

    uvloop unless SPEAKO_EVENT_LOOP says otherwise, as chassis.server runs every service: a server
    measured on another loop than production's would misstate the service or its floor.
    """
    run_event_loop(main, event_loop_from(os.environ))


def _rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, text=True, timeout=60)
    return done.stdout


@dataclass(frozen=True)
class Scratch:
    """A fresh database and vhost for one run."""

    database_url: str
    amqp_url: str


@asynccontextmanager
async def scratch(label: str) -> AsyncIterator[Scratch]:
    """Create an empty database and vhost, drop both afterwards (even on failure)."""
    suffix = uuid.uuid4().hex[:8]
    db = f"speako_bench_{label}_{suffix}"
    vhost = f"speako-bench-{label}-{suffix}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{db}"')
    finally:
        await admin.close()
    try:
        await asyncio.to_thread(
            _rabbitmqctl,
            "eval",
            f'rabbit_vhost:add(<<"{vhost}">>, <<"speako-bench">>), '
            f'rabbit_auth_backend_internal:set_permissions(<<"guest">>, <<"{vhost}">>, <<".*">>, <<".*">>, '
            f'<<".*">>, <<"speako-bench">>).',
        )
    except BaseException:
        # A timed-out add may still complete on the broker: never leave the vhost or database behind.
        await _drop(db, vhost)
        raise
    try:
        yield Scratch(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{db}", AMQP_BASE_URL + vhost)
    finally:
        await _drop(db, vhost)


async def _drop(db: str, vhost: str) -> None:
    try:
        await asyncio.to_thread(_rabbitmqctl, "eval", f'rabbit_vhost:delete(<<"{vhost}">>, <<"speako-bench">>).')
    except Exception as exc:  # the figures matter more than the clean-up
        print(f"  (could not delete vhost {vhost}: {exc})")
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    finally:
        await admin.close()


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass(frozen=True)
class Latency:
    """Latency summary in milliseconds."""

    n: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        """Summarise samples given in seconds."""
        ms = [s * 1000 for s in seconds]
        mean = sum(ms) / len(ms) if ms else float("nan")
        return cls(
            len(ms), percentile(ms, 50), percentile(ms, 90), percentile(ms, 99), max(ms, default=float("nan")), mean
        )

    def __str__(self) -> str:
        return (
            f"p50 {self.p50:.2f} ms, p90 {self.p90:.2f} ms, p99 {self.p99:.2f} ms, max {self.max:.2f} ms (n={self.n})"
        )


def now() -> float:
    """Monotonic seconds."""
    return time.perf_counter()


def machine() -> dict[str, str]:
    """CPU, cores, RAM, kernel, server versions and the date of this run."""
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    try:
        rabbit = _rabbitmqctl("version").strip()
    except Exception:
        rabbit = "unknown"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "rabbitmq": rabbit,
    }


async def postgres_version() -> str:
    """The server's version string."""
    con = await asyncpg.connect(PG_ADMIN_URL)
    try:
        version = await con.fetchval("SHOW server_version")
        sync = await con.fetchval("SHOW synchronous_commit")
        fsync = await con.fetchval("SHOW fsync")
    finally:
        await con.close()
    return f"{version} (fsync={fsync}, synchronous_commit={sync})"


# ---- processes (Linux /proc) ----------------------------------------------------------------


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    """Resident set size (or VmHWM, the peak) of a process in MiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    for line in status.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def proc_stat(pid: int) -> tuple[str, float] | None:
    """(command name, user + system CPU seconds) of a process; None once it has ended."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return stat[stat.index("(") + 1 : stat.rindex(")")], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used, in seconds."""
    stat = proc_stat(pid)
    return float("nan") if stat is None else stat[1]


@asynccontextmanager
async def server_process(module: str) -> AsyncIterator[tuple[str, int]]:
    """Run ``python -m <module> 0`` (a bench server that prints ``READY <port>``); yields its
    address and process id, and kills it afterwards."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", module, "0", stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
        if line[:1] != ["READY"] or len(line) != 2:
            raise RuntimeError(f"{module} did not start (it printed {line!r}, exit status {proc.returncode})")
        yield f"127.0.0.1:{line[1]}", proc.pid
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
