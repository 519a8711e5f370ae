"""Platform figures: the four services as separate processes on a scratch database and vhost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg
import grpc.aio

from bench import cpp_watch, h2load
from bench.activation_routecall import pinned_counter
from bench.client import TERMINAL, PlatformClient
from bench.common import SECRET, Latency, Scratch, cpu_seconds, now, percentile, proc_stat, rss_mb, token
from bench.echo_server import METHOD
from bench.fanout_floor import floor_server as fanout_floor_server
from bench.fanout_floor import send_publish
from bench.load import Throughput, open_loop, sequential
from bench.worker import ROUTE_CALL
from speako.activation.v1 import activation_service_pb2 as act
from speako.config.v1 import resources_pb2 as res
from speako.notifier.v1 import notifier_service_pb2 as ntf
from tests.harness import SERVICES, Platform

# The fan-out's watcher programs: bench/cpp/watch.cc, or bench.worker on grpc.aio.
Watcher = Literal["cpp", "python"]

# Processes of the shared servers, by the name the kernel gives them (/proc/<pid>/stat).
SERVER_PROCESSES = {"postgres": "postgresql", "beam.smp": "rabbitmq", "erl_child_setup": "rabbitmq"}
# CpuMeter's groups after the services.
OTHER_GROUPS = ("postgresql", "rabbitmq", "load generator", "other")


def _all_cpu_seconds() -> dict[int, tuple[str, float]]:
    """pid -> (command name, user + system CPU seconds) of every process on the machine."""
    stats = {int(entry): proc_stat(int(entry)) for entry in os.listdir("/proc") if entry.isdigit()}
    return {pid: stat for pid, stat in stats.items() if stat is not None}


class CpuMeter:
    """CPU used between start() and stop() on the whole machine: each service process, PostgreSQL
    (all its processes), RabbitMQ, this load generator and everything else.

    Everything runs on the same cores, so where the CPU of a publish goes is only complete with the
    servers' and the client's share. (A process that ends in between is not counted.)
    """

    def __init__(self, plat: Platform) -> None:
        self._services = {p.proc.pid: n for n, p in plat.services.items() if p.proc is not None}
        self._before: dict[int, tuple[str, float]] = {}
        self.used: dict[str, float] = {}

    def _group(self, pid: int, name: str) -> str:
        if pid in self._services:
            return self._services[pid]
        if pid == os.getpid():
            return "load generator"
        return SERVER_PROCESSES.get(name, "other")

    def start(self) -> None:
        """Take the first reading."""
        self._before = _all_cpu_seconds()

    def stop(self) -> dict[str, float]:
        """CPU seconds used since start(), in the order of GROUPS (the services in platform order)."""
        used = {name: 0.0 for name in [*self._services.values(), *OTHER_GROUPS]}
        for pid, (name, seconds) in _all_cpu_seconds().items():
            group = self._group(pid, name)
            used[group] += seconds - self._before.get(pid, (name, 0.0))[1]
        self.used = used
        return used


class RssSampler:
    """Samples each service's RSS; keeps the peak per phase."""

    def __init__(self, plat: Platform) -> None:
        self._pids = {n: p.proc.pid for n, p in plat.services.items() if p.proc is not None}
        self.peaks: dict[str, dict[str, float]] = {}
        self.phase = "idle"
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        """Record one sample in the current phase."""
        peaks = self.peaks.setdefault(self.phase, {})
        for name, pid in self._pids.items():
            value = rss_mb(pid)
            if value == value:  # not nan
                peaks[name] = max(peaks.get(name, 0.0), value)

    def lifetime_peaks(self) -> dict[str, float]:
        """VmHWM: each process's peak RSS over its whole life."""
        return {name: rss_mb(pid, "VmHWM") for name, pid in self._pids.items()}

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.2)

    def start(self) -> None:
        """Sample in the background."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


@contextlib.asynccontextmanager
async def running(s: Scratch, label: str, **extra_env: str) -> AsyncIterator[tuple[Platform, PlatformClient]]:
    """Start the four services as processes; stop them afterwards."""
    log_dir = Path(tempfile.mkdtemp(prefix=f"speako-bench-{label}-"))
    plat = Platform(s.database_url, s.amqp_url, SECRET, log_dir, dict(extra_env))
    t0 = now()
    await plat.start(timeout=90)
    print(f"  platform '{label}' serving in {now() - t0:.1f}s (logs: {log_dir})")
    client = PlatformClient(plat.addr("config"), plat.addr("notifier"), plat.addr("activation"))
    try:
        yield plat, client
    finally:
        await client.close()
        await plat.stop()


@dataclass
class PublishBreakdown:
    """Where one publish's time goes, from the job's own timestamps (ms)."""

    to_processing: list[float] = field(default_factory=list)
    processing_to_published: list[float] = field(default_factory=list)
    published_to_seen: list[float] = field(default_factory=list)


# Untimed publishes before publish_latency's timed ones (small configs).
WARMUP_PUBLISHES = 10


async def publish_latency(
    client: PlatformClient, n: int, knowledge_bytes: int = 0, agent_id: str = "latency"
) -> tuple[Latency, PublishBreakdown, int]:
    """PublishDraft sent -> PUBLISHED seen on WatchPublishJob, one publish at a time."""
    agent = await client.create_agent(agent_id, knowledge_bytes)
    samples = []
    breakdown = PublishBreakdown()
    not_published = 0
    warmup = 3 if knowledge_bytes else WARMUP_PUBLISHES
    for i in range(n + warmup):
        await client.edit(agent, f"edit {i}", knowledge_bytes)
        t0 = now()
        job = await client.publish(agent)
        states = await client.watch_to_end(job.name)
        t1 = now()
        seen_wall = time.time()
        final = states[-1]
        if final.state != res.PublishJob.STATE_PUBLISHED:
            not_published += 1
            continue
        if i < warmup:
            continue
        samples.append(t1 - t0)
        # Timestamps written by config (create_time) and the publisher (update_time of each state).
        created = job.create_time.ToMicroseconds() / 1e6
        published = final.update_time.ToMicroseconds() / 1e6
        processing = [s for s in states if s.state == res.PublishJob.STATE_PROCESSING]
        if processing:
            started = processing[0].update_time.ToMicroseconds() / 1e6
            breakdown.to_processing.append((started - created) * 1000)
            breakdown.processing_to_published.append((published - started) * 1000)
        breakdown.published_to_seen.append((seen_wall - published) * 1000)
    return Latency.of(samples), breakdown, not_published


@dataclass(frozen=True)
class Sustained:
    """Open-loop publishing across many agents."""

    offered_rate: float
    sent: int
    outcomes: dict[str, int]
    completion_rate: float
    latency: Latency
    unfinished: int
    send_errors: int


async def sustained(
    client: PlatformClient, agents: int, rate: float, duration_s: float, prefix: str = "load"
) -> Sustained:
    """Publish at ``rate`` per second round-robin over ``agents`` new agents; watch them all on one tenant stream."""
    names = []
    sem = asyncio.Semaphore(16)

    async def make(i: int) -> None:
        async with sem:
            names.append(await client.create_agent(f"{prefix}-{i:03d}"))

    await asyncio.gather(*(make(i) for i in range(agents)))
    sent_at: dict[str, float] = {}
    done_at: dict[str, tuple[float, int]] = {}
    early: dict[str, tuple[float, int]] = {}
    all_done = asyncio.Event()
    sending = True

    async def watch() -> None:
        token = ""
        while True:
            call = client.notifier.WatchPublishJobs(
                ntf.WatchPublishJobsRequest(parent=f"tenants/{client.tenant}", resume_token=token), metadata=client.md
            )
            try:
                async for update in call:
                    token = update.resume_token or token
                    if update.heartbeat or update.job.state not in TERMINAL:
                        continue
                    name = update.job.name
                    if name in sent_at:
                        done_at.setdefault(name, (now(), update.job.state))
                    else:
                        early.setdefault(name, (now(), update.job.state))
                    if not sending and len(done_at) >= len(sent_at):
                        all_done.set()
            except grpc.aio.AioRpcError as exc:
                print(f"    (tenant stream ended: {exc.code().name}; resuming)")
                await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.5)
    locks = {n: asyncio.Lock() for n in names}
    send_errors = 0
    counter = 0

    async def one() -> None:
        nonlocal send_errors, counter
        counter += 1
        agent = names[counter % len(names)]
        async with locks[agent]:
            try:
                await client.edit(agent, f"load {counter}")
                t0 = now()
                job = await client.publish(agent)
            except grpc.aio.AioRpcError:
                send_errors += 1
                return
        sent_at[job.name] = t0
        if job.name in early:
            done_at.setdefault(job.name, early.pop(job.name))

    start = now()
    tasks: set[asyncio.Task[None]] = set()
    total = int(rate * duration_s)
    for i in range(total):
        delay = start + i / rate - now()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(set(tasks), timeout=30)
    sending = False
    if len(done_at) < len(sent_at):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_done.wait(), timeout=30)
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    latencies = [done_at[n][0] - t for n, t in sent_at.items() if n in done_at]
    outcomes: dict[str, int] = {}
    for _, state in done_at.values():
        key = res.PublishJob.State.Name(state).removeprefix("STATE_")
        outcomes[key] = outcomes.get(key, 0) + 1
    finished = [done_at[n][0] for n in sent_at if n in done_at]
    span = (max(finished) - start) if finished else float("nan")
    return Sustained(
        rate,
        len(sent_at),
        outcomes,
        len(finished) / span if finished else 0.0,
        Latency.of(latencies),
        len(sent_at) - len(finished),
        send_errors,
    )


@dataclass(frozen=True)
class Fanout:
    """Delivery delay of state changes to many concurrent tenant watchers."""

    watchers: int
    publishes: int
    deliveries: int
    expected: int
    latency: Latency
    stream_errors: int
    # Streams that did not receive every change exactly once (expected / watchers each).
    uneven_streams: int
    # CPU the serving process used per delivery, in us. The notifier's also pays its intake of the
    # publishes' events and the load generator's own watch of each job: an upper bound.
    server_cpu_us: float
    # The watcher program: "cpp" (bench/cpp/watch.cc) or "python" (bench.worker on grpc.aio).
    watcher: Watcher = "python"
    # CPU the watcher processes used per update received, in us (on the same cores as the server).
    watcher_cpu_us: float = 0.0


@dataclass
class Watched:
    """What the watch workers saw: every delivery's delay (s), the streams that failed (with the
    first messages), the updates each stream received, and the workers' CPU seconds after READY."""

    delays: list[float] = field(default_factory=list)
    errors: int = 0
    error_messages: list[str] = field(default_factory=list)
    per_stream: list[int] = field(default_factory=list)
    cpu_s: float = 0.0


@dataclass
class WatchWorkers:
    """Running watch workers (see ``watch_streams``)."""

    workers: list[Any]

    async def collect(self) -> Watched:
        """End the streams and read every worker's figures."""
        seen = Watched()
        for proc in self.workers:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.close()
            out = json.loads(await asyncio.wait_for(proc.stdout.readline(), 120))
            await proc.wait()
            seen.delays += out["delays"]
            seen.errors += out["error_count"]
            seen.error_messages += out["errors"]
            seen.per_stream += out["per_stream"]
            seen.cpu_s += out["cpu_s"]
        return seen


@contextlib.asynccontextmanager
async def watch_streams(
    addr: str, parent: str, count: int, procs: int = 4, client: Watcher = "python", bearer_token: str = ""
) -> AsyncIterator[WatchWorkers]:
    """``count`` WatchPublishJobs streams on ``parent`` in ``procs`` watcher processes (``client``:
    "python", bench.worker on grpc.aio, or "cpp", bench/cpp/watch.cc), open and idle for 1 s when
    this yields; the workers are stopped (and their figures read) by ``collect``. The streams carry
    ``bearer_token``, by default a viewer's of the parent's tenant."""
    if client == "cpp":
        program = [str(await asyncio.to_thread(cpp_watch.binary)), "watch"]
    else:
        program = [sys.executable, "-m", "bench.worker", "watch"]
    tenant = parent.split("/")[1]
    env = {**os.environ, "BENCH_TOKEN": bearer_token or token(["viewer"], tenant, subject="bench-dashboard")}
    workers = []
    try:
        for i in range(procs):
            share = count // procs + (1 if i < count % procs else 0)
            proc = await asyncio.create_subprocess_exec(
                *program,
                addr,
                parent,
                str(share),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
                limit=1 << 28,
            )
            workers.append(proc)
        for proc in workers:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if line.strip() != b"READY":
                raise RuntimeError(f"watch worker failed: {line!r}")
        await asyncio.sleep(1.0)
        yield WatchWorkers(workers)
    finally:
        for proc in workers:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def fanout(
    client: PlatformClient, plat: Platform, watchers: int, publishes: int, watcher: Watcher = "python"
) -> Fanout:
    """``watchers`` WatchPublishJobs streams (in 4 ``watcher`` processes) while publishes go live."""
    notifier = plat.services["notifier"]
    assert notifier.proc is not None
    tenant = "bench-fanout"
    fan_client = PlatformClient(client.config_addr, client.notifier_addr, client.activation_addr, tenant=tenant)
    try:
        agent = await fan_client.create_agent("fanout")
        async with watch_streams(notifier.addr, f"tenants/{tenant}", watchers, client=watcher) as open_streams:
            cpu0 = cpu_seconds(notifier.proc.pid)
            updates_per_job = 0
            for i in range(publishes):
                await fan_client.edit(agent, f"fanout {i}")
                job = await fan_client.publish(agent)
                states = await fan_client.watch_to_end(job.name)
                # SUBMITTED (config's event) + each later state the publisher announced.
                updates_per_job += 1 + len([s for s in states if s.state != res.PublishJob.STATE_SUBMITTED])
                await asyncio.sleep(0.3)
            await asyncio.sleep(1.0)
            cpu = cpu_seconds(notifier.proc.pid) - cpu0
            seen = await open_streams.collect()
        return _fanout(watchers, publishes, updates_per_job, seen, cpu, watcher)
    finally:
        await fan_client.close()


async def fanout_floor(
    watchers: int, publishes: int, gaps_ms: tuple[float, float], watcher: Watcher = "python"
) -> Fanout:
    """The same watchers on a bare grpc.aio server (bench.fanout_floor): the transport's own delay."""
    async with fanout_floor_server() as (addr, pid), grpc.aio.insecure_channel(addr) as channel:
        async with watch_streams(addr, "tenants/bench-fanout", watchers, client=watcher) as open_streams:
            cpu0 = cpu_seconds(pid)
            for _ in range(publishes):
                await send_publish(channel, gaps_ms)
                await asyncio.sleep(0.3)
            await asyncio.sleep(1.0)
            cpu = cpu_seconds(pid) - cpu0
            seen = await open_streams.collect()
    return _fanout(watchers, publishes, publishes * 3, seen, cpu, watcher)


def _fanout(
    watchers: int,
    publishes: int,
    per_watcher: int,
    seen: Watched,
    cpu_s: float,
    watcher: Watcher,
) -> Fanout:
    """The figures of a fan-out run in which each watcher should have received ``per_watcher`` updates."""
    uneven = sum(1 for n in seen.per_stream if n != per_watcher) + watchers - len(seen.per_stream)
    deliveries = max(1, len(seen.delays))
    return Fanout(
        watchers,
        publishes,
        len(seen.delays),
        watchers * per_watcher,
        Latency.of(seen.delays),
        seen.errors,
        uneven,
        cpu_s * 1e6 / deliveries,
        watcher,
        seen.cpu_s * 1e6 / deliveries,
    )


@dataclass(frozen=True)
class RouteCalls:
    """RouteCall figures."""

    sequential: Latency
    best: Throughput
    at_500: Throughput


async def route_calls(client: PlatformClient, activation_addr: str, database_url: str) -> RouteCalls:
    """RouteCall: sequential latency, maximum throughput (h2load, closed loop), latency at 500/s (open loop)."""
    calls_client = PlatformClient(
        client.config_addr, client.notifier_addr, client.activation_addr, tenant="bench-calls"
    )
    number = "+14155550123"
    pins = await asyncpg.connect(database_url)
    try:
        agent = await calls_client.create_agent("reception")
        final = await calls_client.publish_and_wait(agent)
        assert final.state == res.PublishJob.STATE_PUBLISHED, final
        await calls_client.activate(agent, number)
        await asyncio.sleep(0.5)  # the routing table follows the activation by NOTIFY
        seq = await sequential(lambda: calls_client.route_call(number), 500, warmup=50)
        run = await h2load.closed_loop(
            activation_addr,
            ROUTE_CALL,
            act.RouteCallRequest(called_number=number, caller_number="+14155550199").SerializeToString(),
            metadata=calls_client.service_md,
            confirmed=pinned_counter(pins),
        )
        at_500 = await open_loop(lambda: calls_client.route_call(number), rate=500, duration_s=5)
        return RouteCalls(seq, Throughput(run.rate, run.errors, run.latency), at_500)
    finally:
        await pins.close()
        await calls_client.close()


async def echo_best(addr: str) -> Throughput:
    """The bare echo server's throughput, driven as RouteCall's is (h2load, 2 connections x 32 streams)."""
    run = await h2load.closed_loop(addr, METHOD, b"+14155550100" * 4)
    return Throughput(run.rate, run.errors, run.latency)


def summarize_breakdown(b: PublishBreakdown) -> str:
    """p50 of each leg of a publish."""
    return (
        f"p50 legs: submitted->processing {percentile(b.to_processing, 50):.1f} ms, "
        f"processing->published {percentile(b.processing_to_published, 50):.1f} ms, "
        f"published->seen {percentile(b.published_to_seen, 50):.1f} ms"
    )


__all__ = [
    "SERVICES",
    "CpuMeter",
    "Fanout",
    "PublishBreakdown",
    "RouteCalls",
    "RssSampler",
    "Sustained",
    "echo_best",
    "fanout",
    "fanout_floor",
    "publish_latency",
    "route_calls",
    "running",
    "summarize_breakdown",
    "sustained",
]


async def _admin(s: Scratch, sql: str, *args: object) -> list[Any]:
    """Run one statement as the PostgreSQL superuser; ``{db}`` in sql names the scratch database."""
    import asyncpg

    from bench.common import PG_ADMIN_URL

    db = s.database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        return list(await admin.fetch(sql.format(db=db), *args))
    finally:
        await admin.close()


async def _log_statements(s: Scratch) -> str:
    """Log every statement of the scratch database (new connections only); returns its name."""
    await _admin(s, "ALTER DATABASE \"{db}\" SET log_statement = 'all'")
    return s.database_url.rsplit("/", 1)[1]


async def _backends(s: Scratch) -> dict[str, str]:
    """pid -> application_name of the scratch database's connections."""
    rows = await _admin(s, "SELECT pid, application_name FROM pg_stat_activity WHERE datname = '{db}'")
    return {str(r["pid"]): r["application_name"] for r in rows}


def _count_statements(log_path: str, offset: int, db: str, backends: dict[str, str]) -> dict[str, int]:
    """Statements logged for ``db`` after ``offset``, per application (BEGIN/COMMIT included)."""
    import re

    pattern = re.compile(r"\[(\d+)\] \S+@" + re.escape(db) + r" LOG:  (?:statement|execute [^:]*):")
    counts: dict[str, int] = {}
    with open(log_path, "rb") as f:
        f.seek(offset)
        for raw in f:
            m = pattern.search(raw.decode("utf-8", "replace"))
            if m:
                app = backends.get(m.group(1), "other")
                counts[app] = counts.get(app, 0) + 1
    return counts


async def main(
    n: int, sustained_s: float, rate: float, statements: bool, log_path: str, profile: str = "", big: int = 0
) -> None:
    """Publish-to-live one at a time with CPU per publish, then an optional sustained run."""
    from bench.common import scratch

    async with scratch("pb") as s:
        db = await _log_statements(s) if statements else ""
        async with running(s, "pb") as (plat, client):
            rss = RssSampler(plat)
            rss.start()
            await asyncio.sleep(1.0)
            cpu = CpuMeter(plat)
            offset = os.path.getsize(log_path) if statements else 0
            spies = []
            if profile:
                Path(profile).mkdir(parents=True, exist_ok=True)
                for svc, proc in plat.services.items():
                    if proc.proc is not None:
                        spies.append(
                            await asyncio.create_subprocess_exec(
                                str(Path(sys.executable).parent / "py-spy"),
                                "record",
                                "-r",
                                "250",
                                "-f",
                                "raw",
                                "--nonblocking",
                                "-o",
                                f"{profile}/{svc}.txt",
                                "--pid",
                                str(proc.proc.pid),
                                stdout=asyncio.subprocess.DEVNULL,
                                stderr=asyncio.subprocess.DEVNULL,
                            )
                        )
            cpu.start()
            lat, breakdown, failed = await publish_latency(client, n)
            used = cpu.stop()
            for spy in spies:
                spy.send_signal(2)
                await spy.wait()
            print(f"load {os.getloadavg()[0]:.2f}  publish-to-live one at a time: {lat}; not published {failed}")
            print("  " + summarize_breakdown(breakdown))
            print("  CPU ms per publish: " + ", ".join(f"{k} {v * 1000 / (n + 10):.1f}" for k, v in used.items()))
            if statements:
                counts = _count_statements(log_path, offset, db, await _backends(s))
                print(
                    "  statements per publish: "
                    + ", ".join(f"{k} {v / (n + 10):.1f}" for k, v in sorted(counts.items()))
                    + f"; total {sum(counts.values()) / (n + 10):.1f}"
                )
            if big:
                big_lat, _, _ = await publish_latency(client, big, knowledge_bytes=5 << 20, agent_id="big-knowledge")
                print(f"load {os.getloadavg()[0]:.2f}  5 MB knowledge base publish-to-live: {big_lat}")
            if sustained_s > 0:
                result = await sustained(client, 100, rate, sustained_s)
                print(
                    f"load {os.getloadavg()[0]:.2f}  sustained @ {rate:.0f}/s offered for {sustained_s:.0f}s: "
                    f"{result.completion_rate:.0f}/s completed, {result.latency}, outcomes {result.outcomes}, "
                    f"unfinished {result.unfinished}, send errors {result.send_errors}"
                )
            await rss.stop()
            print("  RSS peak MiB: " + ", ".join(f"{k} {v:.0f}" for k, v in rss.lifetime_peaks().items()))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.platform_bench", description=main.__doc__)
    parser.add_argument("-n", type=int, default=100, help="sequential publishes")
    parser.add_argument("--sustained", type=float, default=0.0, help="seconds of open-loop publishing (0: none)")
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--statements", action="store_true", help="count statements via log_statement=all")
    parser.add_argument("--log", default="/var/log/postgresql/postgresql-15-main.log")
    parser.add_argument("--profile", default="", help="directory for py-spy raw profiles of each service")
    parser.add_argument("--big", type=int, default=0, help="publishes of a 5 MB knowledge base (RSS peaks)")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.sustained, args.rate, args.statements, args.log, args.profile, args.big))
