"""Benchmark: notifier fan-out to many concurrent watchers.

Runs the real notifier in its own process (real PostgreSQL and RabbitMQ, scratch database and
vhost), opens W concurrent WatchPublishJobs streams from client processes, then publishes N jobs'
state changes on ``speako.events`` as the publisher does (SUBMITTED, PROCESSING, PUBLISHED, 20 ms
apart by default; one publish a second).

Figures printed:
- delay from a change's update_time to its delivery on each watcher, p50/p99 over all
  (watcher, change) deliveries, and p50/p99 of the slowest watcher per change;
- CPU per delivery of the notifier and of the client processes (they share the machine);
- memory per watcher: the notifier process's RSS with W idle watchers minus its RSS before them,
  divided by W;
- deliveries missing (should be 0) and watchers cut off as too slow (should be 0).

The intake part (--only intake) pre-loads N publishes' events (3 job changes + version.live each)
before the notifier starts, then times the first to the last applied change: events/s and CPU
per event.

Usage: .venv/bin/python -m bench.notifier_fanout [--watchers 1000] [--events 20] [--interval 1.0]
  [--burst 3] [--gap 0.02] [--processes N] [--only fanout|intake] [--intake-jobs 2000] [--intake-replicas 1]
Client knobs (to check whether the client is the bottleneck): NF_STREAMS_PER_CHANNEL (default 100),
NF_CLIENT_OPTIONS (JSON list of gRPC channel options).
Needs PostgreSQL at 127.0.0.1:5432 and RabbitMQ at 127.0.0.1:5672 (creates and drops its own
database and vhost; rabbitmqctl must be on PATH). NF_PROFILE=<file> writes a cProfile of the
notifier process there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aio_pika
import grpc.aio
from google.protobuf.timestamp_pb2 import Timestamp

from bench.common import Latency, bearer, cpu_seconds, percentile, rss_mb, run_server, scratch, token
from chassis import broker
from chassis.settings import DEV_AUTH_SECRET, Settings
from speako.config.v1 import resources_pb2
from speako.events.v1 import events_pb2
from speako.notifier.v1 import notifier_service_pb2 as svc
from speako.notifier.v1 import notifier_service_pb2_grpc

TENANT = "bench"
AGENT = f"tenants/{TENANT}/agents/desk"
HEARTBEAT_S = 2.0
IDLE_END_S = 5.0


# ---- the notifier process -------------------------------------------------------------------


def serve(database_url: str, amqp_url: str, ready: mp.Queue) -> None:
    """Child process: run one notifier app until terminated."""
    from chassis.logs import configure_logging
    from services.notifier.main import NotifierOptions, create_app

    configure_logging("speako-notifier")

    async def main() -> None:
        settings = replace(
            Settings(),
            database_url=database_url,
            amqp_url=amqp_url,
            auth_secret=DEV_AUTH_SECRET,
            dev_mode=True,
            metrics_ports={},  # replicas would collide on the metrics port
        )
        # SPEAKO_NOTIFIER_* variables still apply (e.g. SPEAKO_NOTIFIER_CONSUMER_PREFETCH).
        options = replace(NotifierOptions.from_env(), heartbeat_s=HEARTBEAT_S, max_streams_per_tenant=100_000)
        app = await create_app(settings, "127.0.0.1:0", options)
        port = await app.start()
        ready.put(port)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(15, stop.set)
        await stop.wait()
        await app.stop(1.0)

    if os.environ.get("NF_PROFILE"):
        import cProfile

        cProfile.runctx("run_server(main())", globals(), locals(), os.environ["NF_PROFILE"])
    else:
        run_server(main())


# ---- watcher processes ----------------------------------------------------------------------


def watchers(port: int, count: int, expected: int, ready: mp.Queue, results: mp.Queue) -> None:
    """Child process: hold ``count`` streams, report readiness, then every delivery's wall time."""

    async def main() -> None:
        meta = bearer(token(["viewer"], TENANT))
        options = json.loads(os.environ.get("NF_CLIENT_OPTIONS", "[]"))  # e.g. [["grpc.http2.bdp_probe", 0]]
        per_channel = int(os.environ.get("NF_STREAMS_PER_CHANNEL", "100"))
        channels = [
            grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[tuple(o) for o in options])
            for _ in range(max(1, count // per_channel))
        ]
        stubs = [notifier_service_pb2_grpc.NotifierServiceStub(ch) for ch in channels]
        subscribed = 0
        all_subscribed = asyncio.Event()
        deliveries: list[tuple[str, int, float, float]] = []
        errors: list[str] = []

        async def one(i: int) -> None:
            nonlocal subscribed
            parent = TENANT if i % 2 else AGENT
            stream = stubs[i % len(stubs)].WatchPublishJobs(
                svc.WatchPublishJobsRequest(parent=f"tenants/{TENANT}" if parent == TENANT else AGENT),
                metadata=meta,
            )
            got = 0
            last = 0.0
            first = True
            try:
                async for update in stream:
                    if first:  # the first heartbeat proves the stream is subscribed
                        first = False
                        subscribed += 1
                        if subscribed == count:
                            all_subscribed.set()
                    if update.heartbeat:
                        # Nothing for a while after deliveries began: the run is over. (With replicas a
                        # change applied after a later one of its job is stale and never delivered.)
                        if got and time.monotonic() - last > IDLE_END_S:
                            break
                        continue
                    last = time.monotonic()
                    changed = update.job.update_time.seconds + update.job.update_time.nanos / 1e9
                    deliveries.append((update.job.name, update.job.state, time.time(), changed))
                    got += 1
                    if got == expected:
                        break
            except grpc.aio.AioRpcError as exc:
                errors.append(exc.code().name)
            finally:
                stream.cancel()

        tasks = [asyncio.create_task(one(i)) for i in range(count)]
        await all_subscribed.wait()
        ready.put(count)
        cpu0 = time.process_time()
        await asyncio.gather(*tasks)
        results.put((deliveries, errors, time.process_time() - cpu0))
        for ch in channels:
            await ch.close()

    asyncio.run(main())


# ---- the run --------------------------------------------------------------------------------


BURST = [
    (resources_pb2.PublishJob.STATE_SUBMITTED, "job.submitted"),
    (resources_pb2.PublishJob.STATE_PROCESSING, "job.processing"),
    (resources_pb2.PublishJob.STATE_PUBLISHED, "job.published"),
]


def job_event(
    name: str, version: str, state: resources_pb2.PublishJob.State, seq: int, created: Timestamp
) -> aio_pika.Message:
    """A JobStateChanged as the publisher sends it; update_time (and event_time) is now."""
    now = Timestamp()
    now.FromDatetime(datetime.now(UTC))
    job = resources_pb2.PublishJob(
        name=name, version=version, state=state, create_time=created, update_time=now, changed_sections=["greetings"]
    )
    if state == resources_pb2.PublishJob.STATE_FAILED:
        job.error.reason = resources_pb2.PublishError.REASON_INVALID_CONFIG
        job.error.message = "rejected"
    return broker.encode(events_pb2.JobStateChanged(job=job, sequence=seq, event_time=now))


async def publish_events(amqp_url: str, n: int, interval: float, burst: int, gap: float) -> None:
    """Publish n jobs' first ``burst`` state changes ``gap`` s apart (a publish), one job every ``interval`` s.

    Each change's update_time is the moment it is published: the delay is measured from it.
    """
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(broker.EVENTS_EXCHANGE)
        for _ in range(n):
            name = f"{AGENT}/publishJobs/{uuid.uuid4()}"
            created = Timestamp()
            created.FromDatetime(datetime.now(UTC))
            for seq, (state, key) in enumerate(BURST[:burst], start=1):
                message = job_event(name, f"{AGENT}/versions/1", state, seq, created)
                await exchange.publish(message, routing_key=key, mandatory=True, timeout=10)
                if seq < burst:
                    await asyncio.sleep(gap)
            await asyncio.sleep(interval)
    finally:
        await connection.close()


def intake_events(n_jobs: int) -> list[tuple[str, aio_pika.Message]]:
    """A publish's events for each of n_jobs jobs: SUBMITTED, PROCESSING, a terminal state, VersionLive.

    Every 20th job fails (one System notification each); the rest are published.
    """
    out: list[tuple[str, aio_pika.Message]] = []
    S = resources_pb2.PublishJob
    for i in range(n_jobs):
        agent = f"tenants/{TENANT}/agents/a{i % 100}"
        name = f"{agent}/publishJobs/{uuid.uuid4()}"
        now = Timestamp()
        now.FromDatetime(datetime.now(UTC))
        final = S.STATE_FAILED if i % 20 == 0 else S.STATE_PUBLISHED
        for seq, (state, key) in enumerate(
            [
                (S.STATE_SUBMITTED, "job.submitted"),
                (S.STATE_PROCESSING, "job.processing"),
                (final, "job.failed" if final == S.STATE_FAILED else "job.published"),
            ],
            start=1,
        ):
            out.append((key, job_event(name, f"{agent}/versions/{i + 1}", state, seq, now)))
        live = events_pb2.VersionLive(agent=agent, version=f"{agent}/versions/{i + 1}", live_time=now)
        out.append(("version.live", broker.encode(live)))
    return out


async def intake(n_jobs: int, replicas: int) -> None:
    """Intake throughput: pre-load the queue with n_jobs publishes' events, start the notifier(s),
    time from the first applied change to the last."""
    import asyncpg

    ctx = mp.get_context("spawn")
    events = intake_events(n_jobs)
    expected = 3 * n_jobs + len(range(0, n_jobs, 20))  # feed entries: job changes + notifications
    async with scratch("notifier_intake") as s:
        connection = await aio_pika.connect(s.amqp_url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            await broker.declare_topology(channel)
            exchange = await channel.get_exchange(broker.EVENTS_EXCHANGE)
            for start in range(0, len(events), 500):
                await asyncio.gather(
                    *(
                        exchange.publish(m, routing_key=k, mandatory=True, timeout=30)
                        for k, m in events[start : start + 500]
                    )
                )
        finally:
            await connection.close()
        servers = []
        con = None
        try:
            ready: mp.Queue = ctx.Queue()  # kept referenced until the children have read it
            for _ in range(replicas):
                p = ctx.Process(target=serve, args=(s.database_url, s.amqp_url, ready), daemon=True)
                p.start()
                servers.append(p)
            con = await asyncpg.connect(s.database_url)
            position, terminal, t_first, cpu0 = 0, 0, 0.0, 0.0
            give_up = time.perf_counter() + 300
            # Done when every job is terminal. (With replicas, a job's change applied after a later
            # one is stale: fewer feed entries than expected, and states never go backwards.)
            while terminal < n_jobs and time.perf_counter() < give_up:
                try:
                    position = await con.fetchval("SELECT last_position FROM notifier.feed_state") or 0
                    terminal = await con.fetchval("SELECT count(*) FROM notifier.jobs WHERE state IN (3, 4, 5)")
                except asyncpg.UndefinedTableError:
                    position = 0
                if position and not t_first:
                    t_first = time.perf_counter()
                    first_position = position
                    cpu0 = sum(cpu_seconds(p.pid) for p in servers if p.pid)
                await asyncio.sleep(0.01)
            t_done = time.perf_counter()
            cpu1 = sum(cpu_seconds(p.pid) for p in servers if p.pid)
            rss = max(rss_mb(p.pid) for p in servers if p.pid)
            applied = await con.fetchval("SELECT count(*) FROM notifier.jobs WHERE state IN (3, 4)")
            notes = await con.fetchval("SELECT count(*) FROM notifier.notifications")
        finally:
            if con is not None:
                await con.close()
            for p in servers:
                p.terminate()
                p.join(10)
    elapsed = t_done - t_first
    changes = position - first_position
    print(f"notifier intake: {n_jobs} publishes pre-loaded ({len(events)} events: 3 job changes + version.live each)")
    print(
        f"  {replicas} notifier process(es); feed entries {position} of {expected}; terminal jobs {applied}; "
        f"notifications {notes}"
    )
    print(
        f"  {changes / elapsed:,.0f} feed entries/s over {elapsed:.2f} s "
        f"(~{changes * len(events) / expected / elapsed:,.0f} events/s consumed incl. version.live), "
        f"{n_jobs * changes / expected / elapsed:,.0f} publishes/s"
    )
    print(
        f"  notifier CPU {((cpu1 - cpu0) * 1000) / max(1, changes * len(events) / expected):.3f} ms per event; "
        f"peak RSS {rss:.1f} MiB"
    )


async def run(
    n_watchers: int, n_events: int, interval: float, processes: int, burst: int, gap: float, replicas: int = 1
) -> None:
    ctx = mp.get_context("spawn")
    async with scratch("notifier") as s:
        server_ready: mp.Queue = ctx.Queue()
        servers = [
            ctx.Process(target=serve, args=(s.database_url, s.amqp_url, server_ready), daemon=True)
            for _ in range(replicas)
        ]
        for server in servers:
            server.start()
        pids = [server.pid for server in servers if server.pid is not None]
        pid = pids[0]  # memory figures are per process: the first replica's
        workers: list[Any] = []
        try:
            ports = [await asyncio.to_thread(server_ready.get, True, 60) for _ in servers]
            await asyncio.sleep(1.0)
            base = rss_mb(pid)
            ready: mp.Queue = ctx.Queue()
            results: mp.Queue = ctx.Queue()
            per = [n_watchers // processes + (1 if i < n_watchers % processes else 0) for i in range(processes)]
            t_open = time.perf_counter()
            for i, count in enumerate(per):
                port = ports[i % len(ports)]  # client processes spread over the replicas
                p = ctx.Process(target=watchers, args=(port, count, n_events * burst, ready, results), daemon=True)
                p.start()
                workers.append(p)
            for _ in per:
                await asyncio.to_thread(ready.get, True, 120)
            opened_s = time.perf_counter() - t_open
            await asyncio.sleep(1.0)
            loaded = rss_mb(pid)
            server_cpu0 = sum(cpu_seconds(p) for p in pids)
            await publish_events(s.amqp_url, n_events, interval, burst, gap)
            all_deliveries: list[tuple[str, int, float, float]] = []
            errors: list[str] = []
            client_cpu = 0.0
            for _ in per:
                d, e, c = await asyncio.to_thread(results.get, True, 120)
                all_deliveries += d
                errors += e
                client_cpu += c
            server_cpu = sum(cpu_seconds(p) for p in pids) - server_cpu0
            peak = rss_mb(pid, "VmHWM")
        finally:
            for w in workers:
                w.join(5)
                if w.is_alive():
                    w.terminate()
            for server in servers:
                server.terminate()
                server.join(10)

    delays = [arrived - changed for _, _, arrived, changed in all_deliveries]
    slowest: dict[tuple[str, int], float] = {}
    for name, state, arrived, changed in all_deliveries:
        slowest[name, state] = max(slowest.get((name, state), 0.0), arrived - changed)
    worst = list(slowest.values())
    n_changes = n_events * burst
    missing = n_watchers * n_changes - len(delays)
    print(f"notifier fan-out: {n_watchers} concurrent WatchPublishJobs watchers (half tenant-wide, half one agent),")
    print(
        f"  {n_events} publishes, one every {interval * 1000:.0f} ms, each {burst} state change(s) "
        f"{gap * 1000:.0f} ms apart on speako.events; watchers in {processes} client processes, "
        f"{replicas} notifier process(es)"
    )
    print(f"  opening {n_watchers} streams took {opened_s:.1f} s; load average {os.getloadavg()[0]:.2f}")
    print(f"  change (update_time) -> delivered, all deliveries: {Latency.of(delays)}")
    print(
        f"  change -> delivered to the slowest watcher: p50 {percentile(worst, 50) * 1000:.2f} ms, "
        f"p99 {percentile(worst, 99) * 1000:.2f} ms"
    )
    per_delivery = 1000 / max(1, len(delays))
    print(
        f"  CPU per delivery: notifier {server_cpu * per_delivery * 1000:.1f} us, "
        f"clients {client_cpu * per_delivery * 1000:.1f} us (all {processes} processes)"
    )
    print(
        f"  notifier RSS: {base:.1f} MiB before watchers, {loaded:.1f} MiB with {n_watchers} idle "
        f"watchers -> {(loaded - base) * 1024 / n_watchers:.1f} KiB per watcher; peak {peak:.1f} MiB"
    )
    print(f"  deliveries missing: {missing}; streams ended with an error: {len(errors)} {sorted(set(errors))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20, help="publishes (jobs)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between publishes")
    parser.add_argument("--burst", type=int, default=3, choices=[1, 2, 3], help="state changes per publish")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between a publish's state changes")
    parser.add_argument("--processes", type=int, default=max(1, min(4, (os.cpu_count() or 2))), help="client processes")
    parser.add_argument("--replicas", type=int, default=1, help="notifier processes sharing the watchers")
    parser.add_argument("--intake-jobs", type=int, default=2000, help="publishes pre-loaded for the intake run")
    parser.add_argument("--intake-replicas", type=int, default=1)
    parser.add_argument("--only", choices=["fanout", "intake"], help="run one part only")
    args = parser.parse_args()
    if args.only != "intake":
        asyncio.run(run(args.watchers, args.events, args.interval, args.processes, args.burst, args.gap, args.replicas))
    if args.only != "fanout":
        asyncio.run(intake(args.intake_jobs, args.intake_replicas))


if __name__ == "__main__":
    main()
