"""Runs the four services as real processes for e2e tests, fault injection and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from speako.cli.probe import wait_until_serving

SERVICES = ("config", "publisher", "notifier", "activation")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_metrics_port_base() -> int:
    """A base for SPEAKO_METRICS_PORT_BASE whose four service ports (base+1..base+4) are free now."""
    while True:
        base = free_port()
        try:
            with contextlib.ExitStack() as stack:
                for offset in range(1, len(SERVICES) + 1):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue


def scrape_metrics(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """GET /metrics on 127.0.0.1:port; each sample keyed by (name, labels)."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


@dataclass
class ServiceProcess:
    name: str
    addr: str
    env: dict[str, str]
    log_path: Path
    proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "speako.cli",
            "serve",
            self.name,
            "--no-create-database",
            env=self.env,
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )
        log.close()

    def send(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        self.send(sig)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    async def kill(self) -> None:
        await self.stop(signal.SIGKILL)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Platform:
    """Four services as separate processes sharing one database and one vhost."""

    database_url: str
    amqp_url: str
    auth_secret: str
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ports = {name: free_port() for name in SERVICES}
        addrs = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPEAKO_", "OTEL_"))}
        env.update(
            SPEAKO_DATABASE_URL=self.database_url,
            SPEAKO_AMQP_URL=self.amqp_url,
            SPEAKO_AUTH_SECRET=self.auth_secret,
            SPEAKO_CONFIG_ADDR=addrs["config"],
            SPEAKO_PUBLISHER_ADDR=addrs["publisher"],
            SPEAKO_NOTIFIER_ADDR=addrs["notifier"],
            SPEAKO_ACTIVATION_ADDR=addrs["activation"],
            SPEAKO_METRICS_PORT_BASE="0",
            SPEAKO_SHUTDOWN_GRACE_S="5",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            self.services[name] = ServiceProcess(name, addrs[name], dict(env), self.log_dir / f"{name}.log")

    def addr(self, name: str) -> str:
        return self.services[name].addr

    async def start(self, names: tuple[str, ...] = SERVICES, timeout: float = 60.0) -> None:
        for name in names:
            await self.services[name].start()
        statuses = await wait_until_serving([self.services[n].addr for n in names], timeout)
        if any(s != "SERVING" for s in statuses.values()):
            logs = "\n".join(f"--- {n}\n{self.services[n].log_text()[-3000:]}" for n in names)
            raise RuntimeError(f"services did not become SERVING: {statuses}\n{logs}")

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.services.values()))
