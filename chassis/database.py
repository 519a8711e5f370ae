"""PostgreSQL: one asyncpg pool per service schema, and the migration runner."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

log = logging.getLogger("speako.database")

_SCHEMA_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_MIGRATION_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def _check_schema(schema: str) -> str:
    if not _SCHEMA_RE.match(schema):
        raise ValueError(f"bad schema name {schema!r}")
    return schema


async def _keep_session(con: asyncpg.Connection) -> None:
    """Pool release hook that sends no reset query (see create_pool)."""


async def create_pool(
    database_url: str, schema: str, *, min_size: int = 2, max_size: int = 10, name: str = "speako"
) -> asyncpg.Pool:
    """Open a pool whose connections resolve unqualified names in ``schema``."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        command_timeout=30,
        server_settings={"search_path": _check_schema(schema), "application_name": name},
        # asyncpg's default reset runs "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
        # RESET ALL" at every release: one more round trip per transaction (about 6% of the
        # publisher's busy CPU in profiles). Pooled connections keep no session state here (LISTEN has
        # its own connections, advisory locks are transaction-scoped, settings are startup
        # parameters), and asyncpg still rolls back an open transaction before this hook.
        reset=_keep_session,
    )
    assert pool is not None
    return pool


async def connect(database_url: str, schema: str, *, name: str = "speako") -> asyncpg.Connection:
    """Open one connection outside the pool (LISTEN needs its own)."""
    return await asyncpg.connect(
        database_url,
        server_settings={"search_path": _check_schema(schema), "application_name": name},
    )


def _lock_key(schema: str) -> int:
    # A stable 63-bit key per schema, so migrations of different services never wait on each other.
    return int.from_bytes(hashlib.sha256(f"speako-migrate:{schema}".encode()).digest()[:8], "big") >> 1


async def migrate(database_url: str, schema: str, directories: Sequence[Path]) -> list[str]:
    """Apply the numbered ``NNNN_name.sql`` files of each directory once, in order.

    An advisory lock serialises replicas that start together: the second waits, then finds
    everything applied. Each file runs in its own transaction with ``search_path`` = schema.
    Returns the names applied now.
    """
    _check_schema(schema)
    con = await asyncpg.connect(database_url)
    applied_now: list[str] = []
    try:
        await con.execute("SELECT pg_advisory_lock($1)", _lock_key(schema))
        try:
            await con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await con.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
                "name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await con.fetch(f'SELECT name FROM "{schema}".schema_migrations')}
            for directory in directories:
                files = sorted(p for p in Path(directory).iterdir() if _MIGRATION_RE.match(p.name))
                for path in files:
                    key = f"{Path(directory).name}/{path.name}"
                    if key in done:
                        continue
                    async with con.transaction():
                        await con.execute(f'SET LOCAL search_path TO "{schema}"')
                        await con.execute(path.read_text())
                        await con.execute(f'INSERT INTO "{schema}".schema_migrations (name) VALUES ($1)', key)
                    applied_now.append(key)
                    log.info("applied migration %s to schema %s", key, schema)
        finally:
            await con.execute("SELECT pg_advisory_unlock($1)", _lock_key(schema))
    finally:
        await con.close()
    return applied_now


async def ensure_database(database_url: str) -> bool:
    """Create the database named in the URL if it is missing; True when created."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/") or "postgres"
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    con = await asyncpg.connect(admin_url)
    try:
        if await con.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        try:
            await con.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await con.close()
