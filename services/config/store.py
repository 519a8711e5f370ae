"""PostgreSQL access of the config service: the only module that speaks SQL.

Writes happen inside ``ConfigStore.transaction()``; every state change is compare-and-set or runs
under the row lock of the agent it changes.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from chassis import outbox
from speako.config.v1 import resources_pb2


@dataclass(frozen=True)
class AgentRecord:
    tenant: str
    agent_id: str
    display_name: str
    create_time: datetime
    update_time: datetime
    latest_version_number: int
    latest_content_sha256: str


@dataclass(frozen=True)
class DraftRecord:
    tenant: str
    agent_id: str
    config_bytes: bytes
    content_sha256: str
    revision: int
    update_time: datetime

    @property
    def etag(self) -> str:
        """The opaque etag clients echo back for compare-and-set."""
        return str(self.revision)

    def config(self) -> resources_pb2.AgentConfig:
        """Parse the stored config."""
        return resources_pb2.AgentConfig.FromString(self.config_bytes)


@dataclass(frozen=True)
class VersionRecord:
    tenant: str
    agent_id: str
    number: int
    config_bytes: bytes
    content_sha256: str
    changed_sections: list[str]
    create_time: datetime
    creator: str

    def config(self) -> resources_pb2.AgentConfig:
        """Parse the stored config."""
        return resources_pb2.AgentConfig.FromString(self.config_bytes)


@dataclass(frozen=True)
class PublishState:
    """The draft and the latest version of an agent, read under the agent's lock."""

    draft: DraftRecord
    latest_version_number: int
    latest_content_sha256: str
    latest_changed_sections: list[str]
    # Only when the draft differs from the latest version.
    latest_config_bytes: bytes | None


@dataclass(frozen=True)
class RequestRecord:
    """An idempotency record found for a request_id."""

    method: str
    request_sha256: str
    response: bytes


_ETAG = re.compile(r"^[0-9]{1,18}$")


def revision_of(etag: str) -> int | None:
    """The revision an etag names, or None for an etag this service never issued."""
    if not _ETAG.fullmatch(etag):
        return None
    return int(etag)


_AGENT_COLUMNS = (
    "tenant, agent_id, display_name, create_time, update_time, latest_version_number, latest_content_sha256"
)
_DRAFT_COLUMNS = "tenant, agent_id, config, content_sha256, revision, update_time"
_VERSION_COLUMNS = "tenant, agent_id, number, config, content_sha256, changed_sections, create_time, creator"


def _agent(row: asyncpg.Record) -> AgentRecord:
    return AgentRecord(
        tenant=row["tenant"],
        agent_id=row["agent_id"],
        display_name=row["display_name"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        latest_version_number=row["latest_version_number"],
        latest_content_sha256=row["latest_content_sha256"],
    )


def _draft(row: asyncpg.Record) -> DraftRecord:
    return DraftRecord(
        tenant=row["tenant"],
        agent_id=row["agent_id"],
        config_bytes=bytes(row["config"]),
        content_sha256=row["content_sha256"],
        revision=row["revision"],
        update_time=row["update_time"],
    )


def _version(row: asyncpg.Record) -> VersionRecord:
    return VersionRecord(
        tenant=row["tenant"],
        agent_id=row["agent_id"],
        number=row["number"],
        config_bytes=bytes(row["config"]),
        content_sha256=row["content_sha256"],
        changed_sections=list(row["changed_sections"]),
        create_time=row["create_time"],
        creator=row["creator"],
    )


class ConfigQueries:
    """SQL over one connection (inside or outside a transaction)."""

    def __init__(self, con: asyncpg.Connection) -> None:
        self.connection = con
        # A claimed request_id whose response is not stored yet: a write that knows the response
        # stores it in its own statement (and clears this); otherwise save_response does.
        self.unsaved_request: tuple[str, uuid.UUID] | None = None

    # --- idempotency ----------------------------------------------------------------------------

    async def claim_request(
        self, tenant: str, request_id: uuid.UUID, method: str, request_sha256: str
    ) -> RequestRecord | None:
        """Reserve a request_id for this transaction, or return the record of the earlier call.

        A concurrent call with the same request_id blocks on the primary key until the first
        transaction ends: it then sees the committed record, or claims the id if the first rolled back.
        """
        claimed = await self.connection.fetchval(
            "INSERT INTO idempotency (tenant, request_id, method, request_sha256) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (tenant, request_id) DO NOTHING RETURNING true",
            tenant,
            request_id,
            method,
            request_sha256,
        )
        if claimed:
            return None
        row = await self.connection.fetchrow(
            "SELECT method, request_sha256, response FROM idempotency WHERE tenant = $1 AND request_id = $2",
            tenant,
            request_id,
        )
        assert row is not None and row["response"] is not None  # committed records always have one
        return RequestRecord(row["method"], row["request_sha256"], bytes(row["response"]))

    async def save_response(self, tenant: str, request_id: uuid.UUID, response: bytes) -> None:
        """Store the response of a claimed request_id."""
        await self.connection.execute(
            "UPDATE idempotency SET response = $3 WHERE tenant = $1 AND request_id = $2",
            tenant,
            request_id,
            response,
        )

    # --- agents ---------------------------------------------------------------------------------

    async def insert_agent(
        self, tenant: str, agent_id: str, display_name: str, now: datetime, empty_config: bytes, empty_sha: str
    ) -> AgentRecord | None:
        """Create an agent and its empty draft; None when the id is taken."""
        row = await self.connection.fetchrow(
            f"INSERT INTO agents (tenant, agent_id, display_name, create_time, update_time) "
            f"VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING RETURNING {_AGENT_COLUMNS}",
            tenant,
            agent_id,
            display_name,
            now,
        )
        if row is None:
            return None
        await self.connection.execute(
            "INSERT INTO drafts (tenant, agent_id, config, content_sha256, revision, update_time) "
            "VALUES ($1, $2, $3, $4, 1, $5)",
            tenant,
            agent_id,
            empty_config,
            empty_sha,
            now,
        )
        return _agent(row)

    async def get_agent(self, tenant: str, agent_id: str) -> AgentRecord | None:
        """One agent."""
        row = await self.connection.fetchrow(
            f"SELECT {_AGENT_COLUMNS} FROM agents WHERE tenant = $1 AND agent_id = $2", tenant, agent_id
        )
        return _agent(row) if row else None

    async def list_agents(self, tenant: str, after: str, limit: int) -> list[AgentRecord]:
        """Agents of a tenant ordered by id, starting after ``after``."""
        rows = await self.connection.fetch(
            f"SELECT {_AGENT_COLUMNS} FROM agents WHERE tenant = $1 AND agent_id > $2 ORDER BY agent_id LIMIT $3",
            tenant,
            after,
            limit,
        )
        return [_agent(r) for r in rows]

    # --- drafts ---------------------------------------------------------------------------------

    async def get_draft(self, tenant: str, agent_id: str) -> DraftRecord | None:
        """The draft of an agent (a read-modify-write locks it with ``lock_draft``)."""
        row = await self.connection.fetchrow(
            f"SELECT {_DRAFT_COLUMNS} FROM drafts WHERE tenant = $1 AND agent_id = $2", tenant, agent_id
        )
        return _draft(row) if row else None

    async def lock_draft(
        self, tenant: str, agent_id: str, *, with_config: bool = True
    ) -> tuple[AgentRecord, DraftRecord] | None:
        """An agent and its draft, the draft locked for a read-modify-write, in one round trip.

        Without with_config the draft's config_bytes are empty (for a whole-config replace).
        """
        config = "d.config" if with_config else "''::bytea"
        row = await self.connection.fetchrow(
            "SELECT a.tenant, a.agent_id, a.display_name, a.create_time, a.update_time, a.latest_version_number, "
            f"a.latest_content_sha256, {config} AS config, d.content_sha256, d.revision, "
            "d.update_time AS draft_update_time "
            "FROM agents a JOIN drafts d ON d.tenant = a.tenant AND d.agent_id = a.agent_id "
            "WHERE a.tenant = $1 AND a.agent_id = $2 FOR UPDATE OF d",
            tenant,
            agent_id,
        )
        if row is None:
            return None
        draft = DraftRecord(
            tenant, agent_id, bytes(row["config"]), row["content_sha256"], row["revision"], row["draft_update_time"]
        )
        return _agent(row), draft

    async def write_draft(
        self,
        tenant: str,
        agent_id: str,
        config: bytes,
        content_sha256: str,
        expected_revision: int | None,
        now: datetime,
    ) -> DraftRecord | None:
        """Replace the draft; with expected_revision, only if it still has it (None otherwise)."""
        # The config is not returned: the caller has it (and it can be megabytes).
        row = await self.connection.fetchrow(
            "UPDATE drafts SET config = $3, content_sha256 = $4, revision = revision + 1, update_time = $5 "
            "WHERE tenant = $1 AND agent_id = $2 AND ($6::bigint IS NULL OR revision = $6) "
            "RETURNING revision, update_time",
            tenant,
            agent_id,
            config,
            content_sha256,
            now,
            expected_revision,
        )
        if row is None:
            return None
        return DraftRecord(tenant, agent_id, config, content_sha256, row["revision"], row["update_time"])

    async def publish_state(self, tenant: str, agent_id: str) -> PublishState | None:
        """Lock the agent and read what a publish needs in one round trip.

        The latest version's config comes back only when the draft differs from it (it is needed
        for changed_sections, and can be megabytes).
        """
        row = await self.connection.fetchrow(
            "SELECT d.config, d.content_sha256, d.revision, d.update_time, a.latest_version_number, "
            "a.latest_content_sha256, v.changed_sections AS latest_changed_sections, "
            "CASE WHEN v.content_sha256 IS DISTINCT FROM d.content_sha256 THEN v.config END AS latest_config "
            "FROM agents a JOIN drafts d ON d.tenant = a.tenant AND d.agent_id = a.agent_id "
            "LEFT JOIN versions v ON v.tenant = a.tenant AND v.agent_id = a.agent_id "
            "AND v.number = a.latest_version_number "
            "WHERE a.tenant = $1 AND a.agent_id = $2 FOR UPDATE OF a",
            tenant,
            agent_id,
        )
        if row is None:
            return None
        return PublishState(
            draft=DraftRecord(
                tenant=tenant,
                agent_id=agent_id,
                config_bytes=bytes(row["config"]),
                content_sha256=row["content_sha256"],
                revision=row["revision"],
                update_time=row["update_time"],
            ),
            latest_version_number=row["latest_version_number"],
            latest_content_sha256=row["latest_content_sha256"],
            latest_changed_sections=list(row["latest_changed_sections"] or []),
            latest_config_bytes=bytes(row["latest_config"]) if row["latest_config"] is not None else None,
        )

    # --- versions -------------------------------------------------------------------------------

    async def get_version(self, tenant: str, agent_id: str, number: int) -> VersionRecord | None:
        """One version."""
        row = await self.connection.fetchrow(
            f"SELECT {_VERSION_COLUMNS} FROM versions WHERE tenant = $1 AND agent_id = $2 AND number = $3",
            tenant,
            agent_id,
            number,
        )
        return _version(row) if row else None

    async def version_sizes(self, tenant: str, agent_id: str, below: int, limit: int) -> list[tuple[int, int]]:
        """(number, stored config size) of versions numbered below ``below``, newest first."""
        rows = await self.connection.fetch(
            "SELECT number, octet_length(config) AS size FROM versions "
            "WHERE tenant = $1 AND agent_id = $2 AND number < $3 ORDER BY number DESC LIMIT $4",
            tenant,
            agent_id,
            below,
            limit,
        )
        return [(r["number"], r["size"]) for r in rows]

    async def get_versions(self, tenant: str, agent_id: str, numbers: Sequence[int]) -> list[VersionRecord]:
        """The named versions, newest first."""
        rows = await self.connection.fetch(
            f"SELECT {_VERSION_COLUMNS} FROM versions WHERE tenant = $1 AND agent_id = $2 "
            "AND number = ANY($3::bigint[]) ORDER BY number DESC",
            tenant,
            agent_id,
            list(numbers),
        )
        return [_version(r) for r in rows]

    # --- publish requests -----------------------------------------------------------------------

    async def insert_publish_request(
        self,
        *,
        job_id: uuid.UUID,
        tenant: str,
        agent_id: str,
        version_number: int,
        requester: str,
        request_id: uuid.UUID | None,
        trace_id: str,
        create_time: datetime,
        deadline: datetime,
        job: bytes,
        messages: Sequence[outbox.Outgoing] = (),
        new_version: VersionRecord | None = None,
    ) -> None:
        """Record a submitted publish job, its outbox messages and (when unsaved) the response.

        One statement: the job bytes are the PublishDraft response an idempotent retry replays.
        With ``new_version`` the same statement stores that immutable version and makes it the
        agent's latest (the caller holds the agent lock); the agent's counter only moves from
        number - 1, so a number can never be skipped.
        """
        args: list[object] = [
            job_id,
            tenant,
            agent_id,
            version_number,
            requester,
            request_id,
            trace_id,
            create_time,
            deadline,
            job,
        ]
        sql = "WITH "
        if new_version is not None:
            first = len(args) + 1
            args.extend(
                (
                    new_version.tenant,
                    new_version.agent_id,
                    new_version.number,
                    new_version.config_bytes,
                    new_version.content_sha256,
                    new_version.changed_sections,
                    new_version.create_time,
                    new_version.creator,
                )
            )
            values = ", ".join(f"${first + i}" for i in range(8))
            sql += (
                f"added AS (INSERT INTO versions ({_VERSION_COLUMNS}) VALUES ({values}) "
                "RETURNING tenant, agent_id, number, content_sha256, create_time), "
                "bumped AS (UPDATE agents a SET latest_version_number = added.number, "
                "latest_content_sha256 = added.content_sha256, update_time = added.create_time FROM added "
                "WHERE a.tenant = added.tenant AND a.agent_id = added.agent_id "
                "AND a.latest_version_number = added.number - 1 RETURNING 1), "
            )
        sql += (
            "request AS (INSERT INTO publish_requests (job_id, tenant, agent_id, version_number, requester, "
            "request_id, trace_id, create_time, deadline, job) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10))"
        )
        bumped = "(SELECT count(*) FROM bumped)" if new_version is not None else "1"
        if self.unsaved_request is not None:
            args.extend(self.unsaved_request)
            sql += (
                ", saved AS (UPDATE idempotency SET response = $10 "
                f"WHERE tenant = ${len(args) - 1} AND request_id = ${len(args)})"
            )
            self.unsaved_request = None
        if not messages:
            _check_bumped(await self.connection.fetchval(f"{sql} SELECT {bumped}", *args), new_version)
            return
        ids_sql = f"ann AS ({outbox.insert_sql(len(args) + 1, len(messages))})"
        args.extend(p for m in messages for p in m.params())
        rows = await self.connection.fetch(
            f"{sql}, {ids_sql} SELECT id, message_id, {bumped} AS bumped{outbox.notify_sql('ann')} FROM ann", *args
        )
        _check_bumped(rows[0]["bumped"], new_version)
        outbox.written([(r["id"], r["message_id"]) for r in rows], list(messages))


def _check_bumped(bumped: int, version: VersionRecord | None) -> None:
    if version is not None and bumped != 1:
        # Raised inside the caller's transaction: nothing of this publish is committed.
        raise RuntimeError(f"version {version.number} of {version.agent_id} is not the next number")


class ConfigStore:
    """Entry point: transactions and one-off reads over the pool."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        after_commit: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        self._pool = pool
        # Wraps each write transaction (the outbox relay's hand-over of the rows it wrote).
        self._after_commit = after_commit

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ConfigQueries]:
        """A read-committed transaction; everything in it commits or nothing does."""
        async with self._after_commit(), self._pool.acquire() as con, con.transaction():
            yield ConfigQueries(con)

    @asynccontextmanager
    async def reading_one(self) -> AsyncIterator[ConfigQueries]:
        """A connection for a single read statement (atomic by itself: no BEGIN/COMMIT round trips)."""
        async with self._pool.acquire() as con:
            yield ConfigQueries(con)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[ConfigQueries]:
        """A connection for reads (a repeatable-read snapshot, so multi-query reads agree)."""
        async with self._pool.acquire() as con, con.transaction(isolation="repeatable_read", readonly=True):
            yield ConfigQueries(con)
