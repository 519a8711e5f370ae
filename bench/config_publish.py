"""PublishDraft latency and throughput of one config process.

``python -m bench.config_publish`` starts the config service as a separate process (real
PostgreSQL and RabbitMQ, a scratch database and vhost, its outbox relay running) and measures:

- one at a time, each publish of new content (an UpdateDraft, not timed, then the timed
  PublishDraft): p50/p99 of PublishDraft, which creates version n+1, the job and two outbox rows;
- the same with a 5 MB knowledge base (checklist, hash and a 5 MB version row per publish);
- closed loop, many callers over many agents: publishes/s accepted, first reusing the latest
  version (submission only), then with new content each time (UpdateDraft + PublishDraft pairs);
- that the outbox drains: every accepted publish's two messages are confirmed by the broker.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
from dataclasses import replace

import aio_pika
import aio_pika.abc
import asyncpg
import grpc.aio

from bench.common import Latency, Scratch, bearer, now, run_server, scratch, token
from bench.load import closed_loop
from chassis import broker
from chassis.settings import Settings
from speako.config.v1 import config_service_pb2 as svc
from speako.config.v1 import config_service_pb2_grpc
from speako.config.v1 import resources_pb2 as r

TENANT = "bench"
SEQUENTIAL = 300
BIG = 10
AGENTS = 32
CONCURRENCY = 32
DURATION_S = 10.0


def config(greeting: str, knowledge_bytes: int = 0) -> r.AgentConfig:
    """A config that passes the checklist; optionally with a large knowledge base."""
    cfg = r.AgentConfig(
        greetings=r.Greetings(opening_greeting=greeting),
        voice=r.Voice(voice_id="aria", primary_language="en-US"),
        personality=r.Personality(name="Ava", prompt="Be helpful and brief."),
        tools=[r.Tool(id="desk", type=r.Tool.Type.TYPE_TRANSFER_CALL, enabled=True, transfer_number="+14155550123")],
        knowledge=r.Knowledge(faqs=[r.Faq(question="Open Sundays?", answer="No.")]),
        fallback_message="Let me take a message.",
    )
    body = "The shop is open Monday to Friday and parking is free behind the building. " * 5000  # ~375 KB
    for i in range(knowledge_bytes // len(body)):
        cfg.knowledge.articles.add(title=f"Manual {i}", body=body)
    return cfg


async def serve(database_url: str, amqp_url: str) -> None:
    """Child process: run one config service until stdin closes."""
    from services.config.main import create_app

    settings = replace(Settings(), database_url=database_url, amqp_url=amqp_url, dev_mode=True, metrics_ports={})
    app = await create_app(settings, listen_addr="127.0.0.1:0")
    port = await app.start()
    print(f"READY {port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await app.stop(2.0)


async def _spawn(s: Scratch) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.config_publish",
        "serve",
        s.database_url,
        s.amqp_url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if not line:
            raise RuntimeError("the config service exited before READY")
        if line.startswith("READY"):
            return proc, int(line.split()[1])


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()


async def _events_sink(amqp_url: str) -> aio_pika.abc.AbstractRobustConnection:
    # A deployment has consumers of job.* (the notifier); without one, mandatory publishes of
    # job.submitted come back unroutable and the relay keeps retrying them.
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    await broker.declare_topology(channel)
    queue = await channel.declare_queue("bench.config-events", durable=True)
    await queue.bind(broker.EVENTS_EXCHANGE, routing_key="#")
    return connection


class Bench:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = config_service_pb2_grpc.ConfigServiceStub(channel)
        self.md = bearer(token(["publisher"], TENANT, "bench@speako"))
        self.counter = itertools.count()

    async def agent(self, agent_id: str) -> str:
        await self.stub.CreateAgent(
            svc.CreateAgentRequest(parent=f"tenants/{TENANT}", agent_id=agent_id), metadata=self.md, timeout=10
        )
        return f"tenants/{TENANT}/agents/{agent_id}"

    async def update(self, agent: str, cfg: r.AgentConfig) -> None:
        await self.stub.UpdateDraft(
            svc.UpdateDraftRequest(draft=r.Draft(name=f"{agent}/draft", config=cfg)), metadata=self.md, timeout=30
        )

    async def publish(self, agent: str) -> r.PublishJob:
        return await self.stub.PublishDraft(
            svc.PublishDraftRequest(name=f"{agent}/draft"), metadata=self.md, timeout=30
        )

    async def sequential(self, agent: str, n: int, knowledge_bytes: int = 0) -> Latency:
        samples = []
        base = config("x", knowledge_bytes)
        for i in range(n):
            base.greetings.opening_greeting = f"Hello number {i}, this is {{agent_name}}."
            await self.update(agent, base)
            t0 = now()
            await self.publish(agent)
            samples.append(now() - t0)
        return Latency.of(samples)


async def _outbox(database_url: str) -> int:
    con = await asyncpg.connect(database_url, server_settings={"search_path": "config"})
    try:
        return int(await con.fetchval("SELECT count(*) FROM outbox"))
    finally:
        await con.close()


def checklist_speed() -> None:
    """The checklist runs inside every publish: its cost on a small and on a 5 MB config."""
    from services.config.domain.canonical import content_sha256
    from services.config.domain.checklist import check_config

    for label, cfg in (("small config", config("Hi {business_name}")), ("5 MB knowledge base", config("Hi", 5 << 20))):
        checks, hashes = [], []
        for _ in range(20):
            t0 = now()
            check_config(cfg)
            checks.append(now() - t0)
            t0 = now()
            content_sha256(cfg)
            hashes.append(now() - t0)
        print(f"check_config, {label} ({cfg.ByteSize() / 1e6:.2f} MB): {Latency.of(checks)}")
        print(f"content_sha256, {label}: {Latency.of(hashes)}")


async def main() -> None:
    """Start the service, measure, print."""
    checklist_speed()
    async with scratch("config") as s:
        sink = await _events_sink(s.amqp_url)
        proc, port = await _spawn(s)
        # Drafts with a 5 MB knowledge base come back whole: lift the client's 4 MiB default.
        limit = Settings().max_message_bytes
        channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{port}",
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
        )
        try:
            b = Bench(channel)
            warm = await b.agent("warm-up")
            await b.sequential(warm, 30)

            seq = await b.sequential(await b.agent("sequential"), SEQUENTIAL)
            print(f"PublishDraft, one at a time, new version each: {seq}")
            big = await b.sequential(await b.agent("big-knowledge"), BIG, knowledge_bytes=5 << 20)
            print(f"PublishDraft with a 5 MB knowledge base, new version each: {big}")

            agents = [await b.agent(f"load-{i}") for i in range(AGENTS)]
            for agent in agents:
                await b.update(agent, config("Load test for {business_name}"))
            picks = itertools.cycle(agents)

            async def reuse() -> object:
                return await b.publish(next(picks))

            reused = await closed_loop(reuse, CONCURRENCY, DURATION_S)
            print(
                f"PublishDraft throughput, {CONCURRENCY} callers over {AGENTS} agents, unchanged content "
                f"(job + outbox only): {reused}"
            )

            async def fresh() -> object:
                agent = next(picks)
                await b.update(agent, config(f"Load {next(b.counter)} for {{business_name}}"))
                return await b.publish(agent)

            pairs = await closed_loop(fresh, CONCURRENCY, DURATION_S)
            print(
                f"UpdateDraft+PublishDraft pairs, {CONCURRENCY} callers over {AGENTS} agents, new version each: "
                f"{pairs} (latency is of the pair)"
            )

            t0 = now()
            backlog = await _outbox(s.database_url)
            while backlog and now() - t0 < 120:
                await asyncio.sleep(0.2)
                backlog = await _outbox(s.database_url)
            print(f"Outbox drained {now() - t0:.1f}s after the load ended (rows left: {backlog})")
        finally:
            await channel.close()
            await _stop(proc)
            await sink.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        run_server(serve(sys.argv[2], sys.argv[3]))
    else:
        asyncio.run(main())
