"""Floors: what one PostgreSQL commit, one RabbitMQ hop and one gRPC call cost on this machine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aio_pika
import asyncpg
import grpc.aio

from bench.common import Latency, Scratch, now, server_process
from bench.echo_server import METHOD
from bench.load import Throughput, closed_loop, open_loop, sequential


@dataclass(frozen=True)
class Floors:
    """The floors measured in this run (latencies in ms)."""

    pg_commit: Latency
    amqp_confirm: Latency
    amqp_round_trip: Latency
    grpc_unary: Latency
    echo_max: Throughput
    echo_at_500: Throughput


async def pg_commit(database_url: str, n: int = 400) -> Latency:
    """One autocommitted INSERT into a durable table (WAL flush included)."""
    con = await asyncpg.connect(database_url)
    try:
        await con.execute("CREATE TABLE IF NOT EXISTS bench_commit (id bigserial PRIMARY KEY, body text)")
        return await sequential(lambda: con.execute("INSERT INTO bench_commit (body) VALUES ('x')"), n)
    finally:
        await con.close()


async def amqp(amqp_url: str, n: int = 400) -> tuple[Latency, Latency]:
    """Publish-confirm, and publish-to-consume round trip, of persistent messages on a quorum queue."""
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue("bench.floor", durable=True, arguments={"x-queue-type": "quorum"})
        body = b"x" * 200  # about the size of a JobStateChanged

        def message() -> aio_pika.Message:
            return aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)

        confirm = await sequential(lambda: channel.default_exchange.publish(message(), routing_key=queue.name), n)
        await queue.purge()

        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=10)
        received: asyncio.Queue[float] = asyncio.Queue()
        consume_queue = await consume_channel.get_queue(queue.name)

        async def on_message(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
            await incoming.ack()
            received.put_nowait(now())

        tag = await consume_queue.consume(on_message)

        # Measured from the publish call to the consumer's callback.
        samples = []
        for i in range(n + 20):
            t0 = now()
            await channel.default_exchange.publish(message(), routing_key=queue.name)
            t1 = await received.get()
            if i >= 20:
                samples.append(t1 - t0)
        await consume_queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
        return confirm, Latency.of(samples)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[str]:
    """Run bench.echo_server in its own process; yields its address."""
    async with server_process("bench.echo_server") as (addr, _):
        yield addr


async def grpc_echo(addr: str, n: int = 1000) -> tuple[Latency, Throughput, Throughput]:
    """Sequential latency, closed-loop maximum and latency at 500/s of a bare unary echo."""
    async with grpc.aio.insecure_channel(addr) as channel:
        call = channel.unary_unary(METHOD)
        payload = b"+14155550100" * 4

        async def op() -> object:
            return await call(payload, timeout=5)

        latency = await sequential(op, n, warmup=100)
        best = await closed_loop(op, concurrency=32, duration_s=4)
        at_500 = await open_loop(op, rate=500, duration_s=4)
    return latency, best, at_500


async def measure(s: Scratch) -> Floors:
    """Every floor, in this order: PostgreSQL, RabbitMQ, gRPC."""
    pg = await pg_commit(s.database_url)
    print(f"  PostgreSQL commit: {pg}")
    confirm, rtt = await amqp(s.amqp_url)
    print(f"  RabbitMQ publish-confirm (quorum): {confirm}")
    print(f"  RabbitMQ publish-to-consume (quorum): {rtt}")
    async with echo_server() as addr:
        unary, best, at_500 = await grpc_echo(addr)
    print(f"  grpc.aio unary echo: {unary}")
    print(f"  grpc.aio echo throughput (32 callers): {best}")
    print(f"  grpc.aio echo at 500/s: {at_500}")
    return Floors(pg, confirm, rtt, unary, best, at_500)
