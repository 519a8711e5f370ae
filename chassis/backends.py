"""The two connections every service opens at start: PostgreSQL and RabbitMQ.

Each composition root needs the same sequence: migrate its schema, open its pool, connect to the
broker and declare the shared topology (idempotent; whichever service starts first, what it
publishes has somewhere to land). On any failure nothing is left open.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aio_pika.abc
import asyncpg

from chassis import broker, database
from chassis.settings import Settings


async def open_backends(
    settings: Settings,
    *,
    service_name: str,
    schema: str,
    migrations: Sequence[Path],
    pool_max_size: int = 10,
) -> tuple[asyncpg.Pool, aio_pika.abc.AbstractRobustConnection]:
    """Migrate ``schema``, open its pool, connect to RabbitMQ and declare the topology."""
    await database.migrate(settings.database_url, schema, list(migrations))
    pool = await database.create_pool(
        settings.database_url, schema, min_size=min(2, pool_max_size), max_size=pool_max_size, name=service_name
    )
    try:
        connection = await broker.connect(settings.amqp_url, service_name)
        try:
            async with connection.channel() as channel:
                await broker.declare_topology(channel)
        except BaseException:
            await connection.close()
            raise
    except BaseException:
        await pool.close()
        raise
    return pool, connection
