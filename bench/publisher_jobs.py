"""Benchmark: the publisher's own overhead per job and its throughput, one process.

Runs the real publisher (in-process, real PostgreSQL and RabbitMQ) against fake config and
runtime gRPC servers that answer at once, so every millisecond measured is the publisher's:
consume + commit the job row, claim, PROCESSING transition, GetVersion, packaging, counted
attempt, DeployBundle, terminal transition, and the outbox relay publishing the events.

Figures printed:
- overhead per job, measured one job at a time (no queueing): inside the publisher (request row
  written -> terminal state committed, from the job row) and end to end (request published ->
  job.published event received, which adds both broker hops and the relay), p50/p99;
- throughput: a burst of N requests already queued, jobs/s until all are terminal.

Usage: .venv/bin/python bench/publisher_jobs.py [--sequential 200] [--burst 2000]
Needs PostgreSQL at 127.0.0.1:5432 and RabbitMQ at 127.0.0.1:5672 (creates and drops its own
database and vhost; rabbitmqctl must be on PATH).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import time
import uuid
from dataclasses import replace

import aio_pika.abc
import asyncpg
import grpc.aio

from chassis import broker
from chassis.settings import DEV_AUTH_SECRET, Settings
from services.config.domain.canonical import content_sha256
from services.publisher.main import create_app
from services.publisher.options import PipelineOptions
from speako.activation.v1 import resources_pb2 as activation_pb2
from speako.activation.v1 import runtime_service_pb2_grpc
from speako.config.v1 import config_service_pb2_grpc
from speako.config.v1 import resources_pb2 as config_pb2
from speako.events.v1 import events_pb2

PG = "postgresql://postgres@127.0.0.1:5432"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"


class InstantConfig(config_service_pb2_grpc.ConfigServiceServicer):
    def __init__(self) -> None:
        self.versions: dict[str, config_pb2.Version] = {}

    async def GetVersion(self, request, context):  # type: ignore[no-untyped-def]
        return self.versions[request.name]


class InstantRuntime(runtime_service_pb2_grpc.RuntimeServiceServicer):
    async def DeployBundle(self, request, context):  # type: ignore[no-untyped-def]
        bundle = request.bundle
        return activation_pb2.Deployment(
            agent=bundle.agent, version=bundle.version, bundle_sha256=bundle.content_sha256, live_version=bundle.version
        )


def _version(i: int) -> config_pb2.Version:
    config = config_pb2.AgentConfig(
        greetings=config_pb2.Greetings(opening_greeting=f"Hello from {{business_name}} #{i}"),
        personality=config_pb2.Personality(name="Ava", prompt="You are a receptionist. " * 40),
        knowledge=config_pb2.Knowledge(
            faqs=[config_pb2.Faq(question=f"Question {n}?", answer="An answer. " * 10) for n in range(20)]
        ),
    )
    return config_pb2.Version(
        name=f"tenants/bench/agents/agent-{i}/versions/1",
        number=1,
        config=config,
        content_sha256=content_sha256(config),
    )


def _request(version: config_pb2.Version) -> events_pb2.PublishRequested:
    agent = version.name.rsplit("/versions/", 1)[0]
    job = config_pb2.PublishJob(
        name=f"{agent}/publishJobs/{uuid.uuid4()}",
        version=version.name,
        state=config_pb2.PublishJob.STATE_SUBMITTED,
        requester="bench",
    )
    job.create_time.GetCurrentTime()
    job.deadline.FromSeconds(job.create_time.seconds + 600)
    return events_pb2.PublishRequested(job=job, content_sha256=version.content_sha256)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(sequential: int, burst: int, vhost: str) -> None:
    """Measure against a fresh database and the given (empty) vhost."""
    db = f"speako_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(f"{PG}/postgres")
    await admin.execute(f'CREATE DATABASE "{db}"')
    config = InstantConfig()
    server = grpc.aio.server()
    config_service_pb2_grpc.add_ConfigServiceServicer_to_server(config, server)
    runtime_service_pb2_grpc.add_RuntimeServiceServicer_to_server(InstantRuntime(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    settings = replace(
        Settings(),
        database_url=f"{PG}/{db}",
        amqp_url=f"{AMQP}{vhost}",
        config_addr=f"127.0.0.1:{port}",
        runtime_addr=f"127.0.0.1:{port}",
        auth_secret=DEV_AUTH_SECRET,
        dev_mode=True,
        metrics_ports={},
    )
    app = None
    connection = await broker.connect(settings.amqp_url, "publisher-bench")
    con = await asyncpg.connect(settings.database_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await broker.declare_topology(channel)
        exchange = await channel.get_exchange(broker.PUBLISH_EXCHANGE)
        events = await channel.declare_queue("bench.events", exclusive=True)
        # Every job.* key must be routable: the relay publishes with mandatory=True.
        await events.bind(broker.EVENTS_EXCHANGE, routing_key="job.#")
        published_at: dict[str, float] = {}
        waiters: dict[str, asyncio.Future[float]] = {}

        async def on_event(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
            event = events_pb2.JobStateChanged.FromString(incoming.body)
            if event.job.state != config_pb2.PublishJob.STATE_PUBLISHED:
                return
            name = event.job.name
            future = waiters.get(name)
            if future is not None and not future.done():
                future.set_result(time.perf_counter())

        await events.consume(on_event, no_ack=True)
        app = await create_app(settings, "127.0.0.1:0", options=PipelineOptions())
        await app.start()

        async def publish(request: events_pb2.PublishRequested) -> None:
            await exchange.publish(broker.encode(request), routing_key=broker.PUBLISH_REQUESTED, mandatory=True)

        # Warm-up: connections, prepared statements, gRPC channels.
        for i in range(20):
            version = _version(10_000_000 + i)
            config.versions[version.name] = version
            request = _request(version)
            waiters[request.job.name] = asyncio.get_running_loop().create_future()
            await publish(request)
            await waiters[request.job.name]

        e2e: list[float] = []
        names: list[str] = []
        for i in range(sequential):
            version = _version(i)
            config.versions[version.name] = version
            request = _request(version)
            waiters[request.job.name] = asyncio.get_running_loop().create_future()
            start = time.perf_counter()
            published_at[request.job.name] = start
            await publish(request)
            done = await asyncio.wait_for(waiters[request.job.name], 30)
            e2e.append((done - start) * 1000)
            names.append(request.job.name)
        rows = await con.fetch(
            "SELECT EXTRACT(EPOCH FROM (update_time - received_time)) * 1000 AS ms, state "
            "FROM publisher.jobs WHERE name = ANY($1::text[])",
            names,
        )
        inside = [float(r["ms"]) for r in rows]
        assert all(r["state"] == "PUBLISHED" for r in rows)

        # Burst: queue everything while the consumer is paused by a stopped app, then start one.
        await app.stop(5)
        app = None
        burst_names = []
        for i in range(burst):
            version = _version(1_000_000 + i)
            config.versions[version.name] = version
            request = _request(version)
            burst_names.append(request.job.name)
            await publish(request)
        app = await create_app(settings, "127.0.0.1:0", options=PipelineOptions())
        start = time.perf_counter()
        cpu_start = time.process_time()
        await app.start()
        while True:
            n = await con.fetchval(
                "SELECT count(*) FROM publisher.jobs WHERE name = ANY($1::text[]) AND state = 'PUBLISHED'",
                burst_names,
            )
            if n == burst:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        relayed = await con.fetchval("SELECT count(*) FROM publisher.outbox")

        print(f"publisher overhead per job, {sequential} jobs one at a time (instant fake config/runtime):")
        print(
            f"  inside the publisher (row written -> terminal committed): p50 {_pct(inside, 0.5):.2f} ms, "
            f"p99 {_pct(inside, 0.99):.2f} ms, mean {statistics.mean(inside):.2f} ms"
        )
        print(
            f"  end to end (request published -> job.published received): p50 {_pct(e2e, 0.5):.2f} ms, "
            f"p99 {_pct(e2e, 0.99):.2f} ms"
        )
        print(
            f"throughput, one process ({PipelineOptions().workers} workers, prefetch {PipelineOptions().prefetch}): "
            f"{burst} queued jobs PUBLISHED in {elapsed:.2f} s = {burst / elapsed:.0f} jobs/s "
            f"(outbox rows still unsent at the end: {relayed})"
        )
        print(
            f"  CPU of this process during the burst: {cpu * 1000 / burst:.2f} ms per job "
            "(upper bound: includes the fake servers and the polling)"
        )
        load = os.getloadavg()[0]
        print(f"  machine load average during the run: {load:.1f} on {os.cpu_count()} CPUs")
    finally:
        if app is not None:
            await app.stop(2)
        await con.close()
        await connection.close()
        await server.stop(0)
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--burst", type=int, default=2000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    vhost = f"speako-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True)
    try:
        subprocess.run(
            ["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True, capture_output=True
        )
        asyncio.run(run(args.sequential, args.burst, vhost))
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], check=False, capture_output=True)


if __name__ == "__main__":
    main()
