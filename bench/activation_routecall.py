"""RouteCall throughput and latency next to a bare grpc.aio echo server, measured in the same run.

``python -m bench.activation_routecall`` starts, as separate processes on this machine, the
activation service (real PostgreSQL and RabbitMQ, a scratch database and vhost) and the echo
server of bench/echo_server.py, then measures each the same way:

- open loop at 500 calls/s from a grpc.aio client (latency from each call's scheduled start);
- closed loop driven by h2load (bench/h2load.py, a load generator in C): the most calls/s the
  server gives when the client does not take half the machine's CPU;
- the same closed loop from grpc.aio client processes (bench/worker.py), for comparison.

Every routed call is pinned durably (group commit) before RouteCall answers; the count of calls
in the database is checked against the calls answered (h2load sees HTTP statuses only, so an
answer without a pinned call is counted as an error). Targets on a 2-core machine: >= 2,000
routed calls/s, p99 < 10 ms at 500/s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import aio_pika
import aio_pika.abc
import asyncpg
import grpc.aio

from bench import h2load
from bench.common import Latency, bearer, cpu_seconds, now, run_server, scratch, token
from bench.echo_server import METHOD
from bench.load import Throughput, open_loop
from bench.worker import ROUTE_CALL
from chassis import broker
from chassis.server import freeze_startup_heap
from chassis.settings import DEV_AUTH_SECRET, Settings
from services.config.domain.canonical import content_sha256
from speako.activation.v1 import activation_service_pb2 as act
from speako.activation.v1 import activation_service_pb2_grpc as act_grpc
from speako.activation.v1 import resources_pb2, runtime_service_pb2, runtime_service_pb2_grpc
from speako.config.v1 import resources_pb2 as cfg

AGENT = "tenants/bench/agents/front-desk"
NUMBER = "+14155550100"
RATE = 500.0
OPEN_S = 5.0
# Open-loop runs of each server, interleaved; the verdict uses the median run. One 5 s run is
# 2,500 calls, so a single stall elsewhere on the machine (seen: one 30 ms stall in a full suite
# run, none in runs on their own) moves its p99; every run's figures are printed.
OPEN_RUNS = 3
CLOSED_S = 5.0
WORKERS = 1
CONCURRENCY = 64
TARGET_RATE = 2000.0
TARGET_P99_MS = 10.0
FIGURES_PREFIX = "FIGURES "


def _config() -> cfg.AgentConfig:
    node = cfg.FlowNode.Type
    return cfg.AgentConfig(
        greetings=cfg.Greetings(opening_greeting="Thanks for calling {business_name}."),
        voice=cfg.Voice(voice_id="aria", primary_language="en-US"),
        personality=cfg.Personality(name="Ava", prompt="Be helpful."),
        tools=[
            cfg.Tool(id="desk", type=cfg.Tool.Type.TYPE_TRANSFER_CALL, enabled=True, transfer_number="+14155550111")
        ],
        knowledge=cfg.Knowledge(faqs=[cfg.Faq(question="Open on Sunday?", answer="No.")]),
        flow=cfg.Flow(
            start_node_id="start",
            nodes=[
                cfg.FlowNode(id="start", type=node.TYPE_START, next_node_ids=["bye"]),
                cfg.FlowNode(id="bye", type=node.TYPE_END_CALL),
            ],
        ),
        fallback_message="Sorry, let me take a message.",
    )


async def serve_activation(database_url: str, amqp_url: str) -> None:
    """Child process: run the activation app until stdin closes."""
    from services.activation.main import create_app
    from services.activation.servicer import ActivationServicer

    logging.basicConfig(level=logging.WARNING)
    settings = replace(
        Settings(), database_url=database_url, amqp_url=amqp_url, auth_secret=DEV_AUTH_SECRET, metrics_ports={}
    )
    app = await create_app(settings, "127.0.0.1:0")
    port = await app.start()
    # The same use cases served by a plain grpc.aio server (no auth, tracing, metrics or error
    # interceptors): separates the chassis' per-call cost from the service's own.
    bare = grpc.aio.server()
    act_grpc.add_ActivationServiceServicer_to_server(ActivationServicer(app.activation), bare)  # type: ignore[attr-defined]
    bare_port = bare.add_insecure_port("127.0.0.1:0")
    await bare.start()
    freeze_startup_heap()  # as chassis.server.run_apps does for every service
    print(f"READY {port} {bare_port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await bare.stop(1.0)
    await app.stop(2.0)


async def _spawn(*args: str) -> tuple[asyncio.subprocess.Process, list[int]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if not line:
            raise RuntimeError(f"{args} exited before READY")
        if line.startswith("READY"):
            return proc, [int(p) for p in line.split()[1:]]


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()


@dataclass(frozen=True)
class ClosedLoop:
    """One closed-loop run: calls/s, errors, latency, and CPU per call of server and client."""

    rate: float
    errors: int
    latency: Latency
    server_cpu_us: float
    client_cpu_us: float
    unverifiable: int = 0  # see bench.h2load.H2Run

    def __str__(self) -> str:
        hidden = f", at most {self.unverifiable} unverifiable" if self.unverifiable else ""
        return (
            f"{self.rate:,.0f}/s ({self.errors} errors{hidden}), {self.latency}; CPU per call: server "
            f"{self.server_cpu_us:.0f} us, client {self.client_cpu_us:.0f} us"
        )


async def _closed_loop(addr: str, kind: str, server_pid: int) -> ClosedLoop:
    cpu0 = cpu_seconds(server_pid)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.worker",
            "unary",
            addr,
            kind,
            str(CLOSED_S),
            str(CONCURRENCY),
            NUMBER,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(WORKERS)
    ]
    outs = await asyncio.gather(*(p.communicate() for p in procs))
    server_cpu = cpu_seconds(server_pid) - cpu0
    results = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outs]
    rate = sum(r["count"] / r["elapsed"] for r in results)
    count = max(1, sum(r["count"] for r in results))
    return ClosedLoop(
        rate=rate,
        errors=sum(r["errors"] for r in results),
        latency=Latency.of([ms / 1000 for r in results for ms in r["latencies_ms"]]),
        # The server's CPU over the whole run (warm-up and connection set-up included) per answered call.
        server_cpu_us=server_cpu / count * 1e6,
        client_cpu_us=sum(r["cpu_s"] for r in results) / count * 1e6,
    )


async def _h2_closed_loop(
    addr: str,
    method: str,
    message: bytes,
    server_pid: int,
    metadata: list[tuple[str, str]] | None = None,
    pinned: Callable[[], Awaitable[int]] | None = None,
) -> ClosedLoop:
    """h2load at full speed; with ``pinned``, answers without a pinned call count as errors."""
    cpu0 = cpu_seconds(server_pid)
    run = await h2load.closed_loop(
        addr, method, message, metadata=metadata or [], duration_s=CLOSED_S, confirmed=pinned
    )
    server_cpu = cpu_seconds(server_pid) - cpu0
    count = max(1, run.answered)
    return ClosedLoop(
        rate=run.rate,
        errors=run.errors,
        unverifiable=run.unverifiable,
        latency=run.latency,
        server_cpu_us=server_cpu / count * 1e6,
        client_cpu_us=run.cpu_s / count * 1e6,
    )


def pinned_counter(con: asyncpg.Connection) -> Callable[[], Awaitable[int]]:
    """The calls pinned in PostgreSQL: RouteCall's own record of each successful answer."""

    async def pinned() -> int:
        return int(await con.fetchval("SELECT count(*) FROM activation.calls"))

    return pinned


def _median_run(runs: list[Throughput]) -> Throughput:
    return sorted(runs, key=lambda run: run.latency.p99)[len(runs) // 2]


def _p99s(runs: list[Throughput]) -> str:
    return " / ".join(f"{run.latency.p99:.2f}" for run in runs)


def _bundle(version: int) -> resources_pb2.Bundle:
    config = _config()
    config.greetings.opening_greeting = f"Thanks for calling {{business_name}} (version {version})."
    return resources_pb2.Bundle(
        agent=AGENT, version=f"{AGENT}/versions/{version}", content_sha256=content_sha256(config), config=config
    )


async def _propagation(writer_addr: str, reader_addr: str, rounds: int = 10) -> Latency:
    """Delay from a deploy answered by one replica to RouteCall on the other routing to it."""
    service = bearer(token(["service"], "*"))
    async with grpc.aio.insecure_channel(writer_addr) as w, grpc.aio.insecure_channel(reader_addr) as r:
        runtime = runtime_service_pb2_grpc.RuntimeServiceStub(w)
        reader = act_grpc.ActivationServiceStub(r)
        request = act.RouteCallRequest(called_number=NUMBER)
        samples = []
        for version in range(2, 2 + rounds):
            await runtime.DeployBundle(
                runtime_service_pb2.DeployBundleRequest(bundle=_bundle(version)), metadata=service, timeout=10
            )
            t0 = now()
            while not (await reader.RouteCall(request, metadata=service, timeout=10)).version.endswith(f"/{version}"):
                if now() - t0 > 10:
                    raise RuntimeError(f"version {version} did not reach the other replica in 10 s")
                await asyncio.sleep(0.002)
            samples.append(now() - t0)
    return Latency.of(samples)


async def _prepare(channel: grpc.aio.Channel) -> None:
    runtime = runtime_service_pb2_grpc.RuntimeServiceStub(channel)
    activation = act_grpc.ActivationServiceStub(channel)
    await runtime.DeployBundle(
        runtime_service_pb2.DeployBundleRequest(bundle=_bundle(1)), metadata=bearer(token(["service"], "*")), timeout=10
    )
    admin = bearer(token(["admin"], "bench"))
    await activation.AssignPhoneNumber(act.AssignPhoneNumberRequest(name=AGENT, phone_number=NUMBER), metadata=admin)
    await activation.ActivateAgent(act.ActivateAgentRequest(name=AGENT), metadata=admin, timeout=10)
    service = bearer(token(["service"], "*"))
    for _ in range(200):  # the routing table follows by NOTIFY
        try:
            await activation.RouteCall(act.RouteCallRequest(called_number=NUMBER), metadata=service, timeout=5)
            return
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.05)
    raise RuntimeError("the agent never became routable")


async def _bind_events_sink(amqp_url: str) -> aio_pika.abc.AbstractRobustConnection:
    # A consumer of speako.events exists in a real deployment (the notifier); without one the
    # outbox relay's mandatory publishes come back unroutable and it retries.
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    await broker.declare_topology(channel)
    queue = await channel.declare_queue("bench.activation-events", auto_delete=True)
    await queue.bind(broker.EVENTS_EXCHANGE, routing_key="#")
    return connection


async def main() -> None:
    """Run both servers, measure, print."""
    if not h2load.available():
        raise SystemExit("h2load not found: apt-get install nghttp2-client (make bench installs it)")
    async with scratch("act") as s:
        sink = await _bind_events_sink(s.amqp_url)
        activation_proc, (act_port, bare_port) = await _spawn(
            "-m", "bench.activation_routecall", "serve", s.database_url, s.amqp_url
        )
        echo_proc, (echo_port,) = await _spawn("-m", "bench.echo_server", "0")
        act_addr, echo_addr = f"127.0.0.1:{act_port}", f"127.0.0.1:{echo_port}"
        try:
            channel = grpc.aio.insecure_channel(act_addr)
            await _prepare(channel)
            stub = act_grpc.ActivationServiceStub(channel)
            md = bearer(token(["service"], "*", subject="bench-gateway"))
            error_codes: Counter[str] = Counter()
            request = act.RouteCallRequest(called_number=NUMBER, caller_number="+14155550199")
            echo_channel = grpc.aio.insecure_channel(echo_addr)
            echo = echo_channel.unary_unary(METHOD)
            payload = request.SerializeToString()

            async def route() -> object:
                try:
                    return await stub.RouteCall(request, metadata=md, timeout=10)
                except grpc.aio.AioRpcError as err:
                    error_codes[err.code().name] += 1
                    raise

            async def bounce() -> object:
                return await echo(payload, timeout=10)

            for _ in range(100):
                await route()
                await bounce()
            echo_runs: list[Throughput] = []
            route_runs: list[Throughput] = []
            for _ in range(OPEN_RUNS):
                echo_runs.append(await open_loop(bounce, RATE, OPEN_S))
                route_runs.append(await open_loop(route, RATE, OPEN_S))
            echo_open, route_open = _median_run(echo_runs), _median_run(route_runs)
            await channel.close()
            await echo_channel.close()
            pins = await asyncpg.connect(s.database_url)
            try:
                count_pinned = pinned_counter(pins)
                pid = activation_proc.pid
                echo_max = await _h2_closed_loop(echo_addr, METHOD, payload, echo_proc.pid)
                route_max = await _h2_closed_loop(act_addr, ROUTE_CALL, payload, pid, md, count_pinned)
                bare_max = await _h2_closed_loop(f"127.0.0.1:{bare_port}", ROUTE_CALL, payload, pid, None, count_pinned)
            finally:
                await pins.close()
            echo_py = await _closed_loop(echo_addr, "echo", echo_proc.pid)
            route_py = await _closed_loop(act_addr, "routecall", activation_proc.pid)
            second_proc, (second_port, _) = await _spawn(
                "-m", "bench.activation_routecall", "serve", s.database_url, s.amqp_url
            )
            try:
                propagation = await _propagation(act_addr, f"127.0.0.1:{second_port}")
            finally:
                await _stop(second_proc)
        finally:
            await _stop(activation_proc)
            await _stop(echo_proc)
            await sink.close()
        con = await asyncpg.connect(s.database_url)
        try:
            pinned = await pinned_counter(con)()
        finally:
            await con.close()

    figures = {
        "routecall_max_per_s": route_max.rate,
        "routecall_max_errors": route_max.errors,
        "routecall_p50_ms_at_500": route_open.latency.p50,
        "routecall_p99_ms_at_500": route_open.latency.p99,
        "routecall_p99_ms_at_500_worst_run": max(run.latency.p99 for run in route_runs),
        "echo_max_per_s": echo_max.rate,
        "echo_p50_ms_at_500": echo_open.latency.p50,
        "echo_p99_ms_at_500": echo_open.latency.p99,
        "routecall_server_cpu_us": route_max.server_cpu_us,
        "echo_server_cpu_us": echo_max.server_cpu_us,
        "routecall_bare_server_cpu_us": bare_max.server_cpu_us,
        "routecall_max_per_s_grpc_aio_client": route_py.rate,
        "echo_max_per_s_grpc_aio_client": echo_py.rate,
        "load_average": os.getloadavg()[0],
    }
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"RouteCall vs bare grpc.aio echo, {os.cpu_count()} cores, load average {load} (1/5/15 min) at the "
        "end; server, client and PostgreSQL share the machine"
    )
    print(
        f"open loop at {RATE:.0f}/s, {OPEN_RUNS} runs of {OPEN_S:.0f}s each, interleaved, from the benchmark "
        "process (latency from scheduled start); the median run by p99:"
    )
    print(f"  echo      : {echo_open}")
    print(f"  RouteCall : {route_open}" + (f" errors by status: {dict(error_codes)}" if error_codes else ""))
    print(f"  p99 of each run: echo {_p99s(echo_runs)} ms; RouteCall {_p99s(route_runs)} ms")
    print(f"closed loop, h2load with 2 connections x 32 streams, {CLOSED_S:.0f}s:")
    print(f"  echo      : {echo_max}")
    print(f"  RouteCall : {route_max}")
    print(f"  RouteCall without the chassis interceptors: {bare_max}")
    print(f"closed loop, {WORKERS} grpc.aio client process x {CONCURRENCY} callers, {CLOSED_S:.0f}s (for comparison):")
    print(f"  echo      : {echo_py}")
    print(f"  RouteCall : {route_py}")
    print(f"deploy on replica A -> RouteCall on replica B routes to it: {propagation}")
    print(f"calls pinned in PostgreSQL: {pinned:,} (every answered RouteCall committed before its answer)")
    print("summary (RouteCall / echo):")
    print(
        f"  max calls/s      : RouteCall {route_max.rate:,.0f}, echo {echo_max.rate:,.0f}, "
        f"ratio {route_max.rate / echo_max.rate:.2f}"
    )
    for pct in ("p50", "p99"):
        ours, floor = getattr(route_open.latency, pct), getattr(echo_open.latency, pct)
        print(f"  {pct} at {RATE:.0f}/s    : RouteCall {ours:.2f} ms, echo {floor:.2f} ms, ratio {ours / floor:.1f}x")
    print(
        f"  server CPU/call  : RouteCall {route_max.server_cpu_us:.0f} us, echo {echo_max.server_cpu_us:.0f} us, "
        f"ratio {route_max.server_cpu_us / echo_max.server_cpu_us:.1f}x; without the chassis interceptors "
        f"{bare_max.server_cpu_us:.0f} us"
    )
    # Answers the server did not confirm (or HTTP failures) void the run's rate.
    verdict_rate = "met" if route_max.rate >= TARGET_RATE and route_max.errors == 0 else "NOT met"
    verdict_p99 = "met" if route_open.latency.p99 < TARGET_P99_MS else "NOT met"
    print(
        f"targets: >= {TARGET_RATE:,.0f} routed calls/s: {verdict_rate}; "
        f"p99 < {TARGET_P99_MS:.0f} ms at {RATE:.0f}/s: {verdict_p99}"
    )
    # One machine-readable line for bench/report.py (docs/PERFORMANCE.md).
    print(FIGURES_PREFIX + json.dumps({k: round(v, 3) for k, v in figures.items()}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        run_server(serve_activation(sys.argv[2], sys.argv[3]))
    else:
        asyncio.run(main())
