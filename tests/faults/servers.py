"""Control of the real PostgreSQL and RabbitMQ for fault injection; restoring them always wins."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time

PG_CLUSTER = ("15", "main")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def run(*cmd: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output."""
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=check)


def pg_ready() -> bool:
    """PostgreSQL accepts connections."""
    return run("pg_isready", "-h", "127.0.0.1", "-p", "5432", "-t", "2", check=False).returncode == 0


def rabbit_ready() -> bool:
    """RabbitMQ's app is running and its AMQP port open."""
    if not _port_open(5672):
        return False
    return run("rabbitmq-diagnostics", "-q", "check_running", timeout=60, check=False).returncode == 0


def ensure_running() -> None:
    """Start whatever is down (PostgreSQL, the RabbitMQ node or its app) and wait until it serves."""
    if not pg_ready():
        run("pg_ctlcluster", "--skip-systemctl-redirect", *PG_CLUSTER, "start", check=False)
        _wait(pg_ready, 60, "PostgreSQL")
    if not rabbit_ready():
        node_up = run("rabbitmqctl", "-q", "status", timeout=60, check=False).returncode == 0
        if node_up:
            run("rabbitmqctl", "start_app", timeout=120, check=False)
        else:
            subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, timeout=60, check=False)
        _wait(rabbit_ready, 120, "RabbitMQ")


def _wait(ready: object, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not come back within {timeout:.0f}s")


async def pg_restart() -> None:
    """Restart the PostgreSQL cluster (every connection of every client is cut)."""
    await asyncio.to_thread(run, "pg_ctlcluster", "--skip-systemctl-redirect", *PG_CLUSTER, "restart")
    await asyncio.to_thread(_wait, pg_ready, 60, "PostgreSQL")


async def rabbit_stop_app() -> None:
    """Stop the RabbitMQ application (the node stays up; clients are disconnected)."""
    await asyncio.to_thread(run, "rabbitmqctl", "stop_app")


async def rabbit_start_app() -> None:
    """Start the RabbitMQ application again and wait until it serves."""
    await asyncio.to_thread(run, "rabbitmqctl", "start_app")
    await asyncio.to_thread(_wait, rabbit_ready, 120, "RabbitMQ")


def rabbit_env(key: str) -> str:
    """An Erlang term of the rabbit application's environment (e.g. consumer_timeout)."""
    return run("rabbitmqctl", "eval", f"application:get_env(rabbit, {key}).").stdout.strip()


def rabbit_set_env(key: str, value: int) -> None:
    """Change the rabbit application's environment at run time (read by channels opened later)."""
    run("rabbitmqctl", "eval", f"application:set_env(rabbit, {key}, {value}).")
