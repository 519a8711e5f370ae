"""The publisher's only SQL: jobs, leases and processed deliveries (schema ``publisher``).

Every state change is a compare-and-set on (state, sequence) and, for a worker, on its lease,
and enqueues the job's JobStateChanged in the same transaction, so an event exists exactly for
each committed transition and a late or duplicate actor can never move a job backwards.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from chassis import broker, outbox
from services.publisher import codec
from services.publisher.domain import ErrorReason, Job, JobError, JobState

SCHEMA = "publisher"
# Spelled out (not a parameter) so the planner uses the partial index on unfinished jobs.
_ACTIVE_SQL = "state IN ('SUBMITTED', 'PROCESSING')"
# Event message ids are derived from (job, sequence): a re-sent event keeps its dedupe key.
_EVENT_NAMESPACE = uuid.UUID("5b0e5f0c-3d0a-4c49-9a57-6a1f0e7c2b11")

_COLUMNS = (
    "name, agent, version, content_sha256, state, error_reason, error_message, error_field, attempts, "
    "create_time, update_time, deadline, changed_sections, requester, trace_id, trace_context, sequence"
)


@dataclass(frozen=True)
class Claim:
    """A job a worker holds the lease of, with the trace context of its request."""

    job: Job
    trace_context: Mapping[str, str] = field(default_factory=dict)


def _job(row: asyncpg.Record) -> Job:
    error = None
    if row["error_reason"] is not None:
        error = JobError(ErrorReason(row["error_reason"]), row["error_message"], row["error_field"])
    return Job(
        name=row["name"],
        version=row["version"],
        state=JobState(row["state"]),
        create_time=row["create_time"],
        update_time=row["update_time"],
        deadline=row["deadline"],
        content_sha256=row["content_sha256"],
        changed_sections=tuple(row["changed_sections"]),
        requester=row["requester"],
        trace_id=row["trace_id"],
        attempts=row["attempts"],
        error=error,
        sequence=row["sequence"],
    )


def _context(row: asyncpg.Record) -> dict[str, str]:
    raw: Any = row["trace_context"]
    value = json.loads(raw) if isinstance(raw, str) else raw
    return {str(k): str(v) for k, v in (value or {}).items()}


def event_message_id(job: Job) -> str:
    """The deterministic message_id of the event announcing the job at its current sequence."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{job.name}#{job.sequence}"))


class JobStore:
    """Repository of publish jobs over one asyncpg pool (search_path = publisher)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        after_commit: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        self.pool = pool
        # Wraps each write (the outbox relay's hand-over of the rows it wrote, see chassis.outbox).
        self._after_commit = after_commit

    @asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection inside a transaction.

        durable=False skips waiting for the WAL flush at commit: only for changes whose loss in a
        database crash is harmless (leases, heartbeats), never for a state the broker is acked on.
        """
        async with self._after_commit(), self.pool.acquire() as con, con.transaction():
            if not durable:
                await con.execute("SET LOCAL synchronous_commit TO OFF")
            yield con

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection in autocommit: for writes that are one statement (atomic and durable
        by themselves), without the BEGIN and COMMIT round trips of a transaction."""
        async with self._after_commit(), self.pool.acquire() as con:
            yield con

    async def get(self, con: asyncpg.Connection, name: str) -> Job | None:
        """The job, or None when the publisher never received it."""
        row = await con.fetchrow(f"SELECT {_COLUMNS} FROM jobs WHERE name = $1", name)
        return _job(row) if row else None

    async def mark_processed(self, con: asyncpg.Connection, message_id: str, job_name: str) -> bool:
        """Remember a handled delivery; False when it was already remembered."""
        status = await con.execute(
            "INSERT INTO processed_messages (message_id, job_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            message_id,
            job_name,
        )
        return status.endswith(" 1")

    async def intake(
        self,
        con: asyncpg.Connection,
        message_id: str,
        job: Job,
        trace_context: Mapping[str, str],
        *,
        owner: str | None = None,
        lease_s: float = 0.0,
    ) -> tuple[bool, bool]:
        """Remember a delivery and insert its job, in one statement; returns (new delivery, inserted).

        With owner, the job is inserted leased to it (a PROCESSING job claimed in the same commit
        that accepts the request). A job not SUBMITTED is announced in the same statement. A
        concurrent copy of the delivery waits on the processed_messages key, then finds it taken.
        """
        args: list[Any] = [message_id, *self._row(job, trace_context), owner, lease_s]
        announce = job.state is not JobState.SUBMITTED
        event = self._event(job) if announce else None
        sql = (
            "WITH seen AS (INSERT INTO processed_messages (message_id, job_name) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING RETURNING 1), "
            f"added AS (INSERT INTO jobs ({_COLUMNS}, lease_owner, lease_expires) "
            "SELECT $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::text[], $15, $16, $17::jsonb, $18, "
            "$19::text, CASE WHEN $19::text IS NULL THEN NULL "
            "ELSE clock_timestamp() + make_interval(secs => $20::float8) END "
            "FROM seen ON CONFLICT (name) DO NOTHING RETURNING 1)"
        )
        if event is not None:
            args.extend(event.params())
            sql += f", {outbox.insert_select_sql(21, 'added', 'ann')} "
        sql += ", ann_ids AS (SELECT id FROM ann)" if event is not None else ", ann_ids AS (SELECT NULL::bigint AS id)"
        row = await con.fetchrow(
            sql + " SELECT (SELECT count(*) FROM seen) AS seen, (SELECT count(*) FROM added) AS added, "
            f"(SELECT max(id) FROM ann_ids) AS outbox_id{outbox.notify_sql('ann_ids') if event is not None else ''}",
            *args,
        )
        assert row is not None
        if event is not None and row["outbox_id"] is not None:
            outbox.written([(row["outbox_id"], event.message_id)], [event])
        return bool(row["seen"]), bool(row["added"])

    @staticmethod
    def _row(job: Job, trace_context: Mapping[str, str] | None) -> list[Any]:
        return [
            job.name,
            job.agent,
            job.version,
            job.content_sha256,
            job.state.value,
            job.error.reason.value if job.error else None,
            job.error.message if job.error else "",
            job.error.field if job.error else "",
            job.attempts,
            job.create_time,
            job.update_time,
            job.deadline,
            list(job.changed_sections),
            job.requester,
            job.trace_id,
            json.dumps(dict(trace_context or {})),
            job.sequence,
        ]

    async def insert(self, con: asyncpg.Connection, job: Job, trace_context: Mapping[str, str] | None = None) -> bool:
        """Insert a job unless one of that name exists; a non-SUBMITTED job is also announced."""
        status = await con.execute(
            f"INSERT INTO jobs ({_COLUMNS}) VALUES "
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::jsonb, $17) "
            "ON CONFLICT (name) DO NOTHING",
            *self._row(job, trace_context),
        )
        inserted = status.endswith(" 1")
        if inserted and job.state is not JobState.SUBMITTED:
            await self._announce(con, job)
        return inserted

    async def transition(self, con: asyncpg.Connection, before: Job, after: Job, *, owner: str | None = None) -> bool:
        """Compare-and-set before -> after (and the lease, when owner is given); announce it."""
        lease_check = "AND lease_owner = $11" if owner is not None else ""
        args: list[Any] = [
            before.name,
            before.state.value,
            before.sequence,
            after.state.value,
            after.error.reason.value if after.error else None,
            after.error.message if after.error else "",
            after.error.field if after.error else "",
            after.attempts,
            after.update_time,
            after.sequence,
        ]
        if owner is not None:
            args.append(owner)
        # A terminal job holds no lease; a job that stays active keeps its owner.
        update = (
            "UPDATE jobs SET state = $4, error_reason = $5, error_message = $6, error_field = $7, "
            "attempts = $8, update_time = $9, sequence = $10, "
            "lease_owner = CASE WHEN $4 IN ('SUBMITTED', 'PROCESSING') THEN lease_owner END, "
            "lease_expires = CASE WHEN $4 IN ('SUBMITTED', 'PROCESSING') THEN lease_expires END "
            f"WHERE name = $1 AND state = $2 AND sequence = $3 {lease_check}"
        )
        if after.sequence == before.sequence:
            return (await con.execute(update, *args)).endswith(" 1")
        # The change and its event in one statement (one round trip; atomic even in autocommit).
        event = self._event(after)
        row = await con.fetchrow(
            f"WITH moved AS ({update} RETURNING 1), "
            f"{outbox.insert_select_sql(len(args) + 1, 'moved', 'ann')} "
            f"SELECT (SELECT id FROM ann) AS outbox_id{outbox.notify_sql('ann')}",
            *args,
            *event.params(),
        )
        if row is None or row["outbox_id"] is None:
            return False
        outbox.written([(row["outbox_id"], event.message_id)], [event])
        return True

    async def _announce(self, con: asyncpg.Connection, job: Job) -> None:
        await outbox.enqueue_all(con, [self._event(job)])

    @staticmethod
    def _event(job: Job) -> outbox.Outgoing:
        return outbox.Outgoing.of(
            exchange=broker.EVENTS_EXCHANGE,
            routing_key=job.state.routing_key,
            message=codec.state_changed(job),
            message_id=event_message_id(job),
        )

    async def claim(self, con: asyncpg.Connection, owner: str, lease_s: float, limit: int = 1) -> list[Claim]:
        """Lease up to limit of the oldest unfinished jobs nobody holds (or whose lease expired)."""
        rows = await con.fetch(
            "UPDATE jobs SET lease_owner = $1, "
            "lease_expires = clock_timestamp() + make_interval(secs => $2) "
            f"WHERE name IN (SELECT name FROM jobs WHERE {_ACTIVE_SQL} "
            "  AND (lease_expires IS NULL OR lease_expires < clock_timestamp()) "
            "  ORDER BY create_time LIMIT $3 FOR UPDATE SKIP LOCKED) "
            f"RETURNING {_COLUMNS}",
            owner,
            lease_s,
            limit,
        )
        return sorted((Claim(_job(r), _context(r)) for r in rows), key=lambda c: c.job.create_time)

    async def renew(self, con: asyncpg.Connection, owner: str, name: str, lease_s: float) -> bool:
        """Extend the owner's lease; False when the lease was lost or the job finished."""
        status = await con.execute(
            "UPDATE jobs SET lease_expires = clock_timestamp() + make_interval(secs => $3) "
            f"WHERE name = $1 AND lease_owner = $2 AND {_ACTIVE_SQL}",
            name,
            owner,
            lease_s,
        )
        return status.endswith(" 1")

    async def count_attempt(
        self, con: asyncpg.Connection, owner: str, job: Job, now: datetime, lease_s: float
    ) -> Job | None:
        """Record one more deploy attempt under the owner's lease (renewed); None if lost."""
        row = await con.fetchrow(
            "UPDATE jobs SET attempts = attempts + 1, update_time = GREATEST(update_time, $3), "
            "lease_expires = clock_timestamp() + make_interval(secs => $4) "
            "WHERE name = $1 AND lease_owner = $2 AND state = 'PROCESSING' "
            f"RETURNING {_COLUMNS}",
            job.name,
            owner,
            now,
            lease_s,
        )
        return _job(row) if row else None

    async def release(self, con: asyncpg.Connection, owner: str, names: Sequence[str] | None = None) -> int:
        """Hand leases back so another worker takes the jobs at once; returns how many."""
        if names is None:
            status = await con.execute(
                "UPDATE jobs SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = $1", owner
            )
        else:
            status = await con.execute(
                "UPDATE jobs SET lease_owner = NULL, lease_expires = NULL "
                "WHERE lease_owner = $1 AND name = ANY($2::text[])",
                owner,
                list(names),
            )
        return int(status.rsplit(" ", 1)[1])

    async def lock_overdue(self, con: asyncpg.Connection, now: datetime, limit: int = 100) -> list[Job]:
        """Unfinished jobs past their deadline that no live lease covers (locked for this tx)."""
        rows = await con.fetch(
            f"SELECT {_COLUMNS} FROM jobs WHERE {_ACTIVE_SQL} AND deadline <= $1 "
            "AND (lease_expires IS NULL OR lease_expires < clock_timestamp()) "
            "ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED",
            now,
            limit,
        )
        return [_job(r) for r in rows]

    async def prune_processed(self, con: asyncpg.Connection, older_than_s: float) -> int:
        """Forget handled deliveries older than the broker could still redeliver."""
        status = await con.execute(
            "DELETE FROM processed_messages WHERE processed_at < clock_timestamp() - make_interval(secs => $1)",
            older_than_s,
        )
        return int(status.rsplit(" ", 1)[1])

    async def counts(self, con: asyncpg.Connection) -> dict[str, int]:
        """Number of jobs per state (for metrics and tests)."""
        rows = await con.fetch("SELECT state, count(*) AS n FROM jobs GROUP BY state")
        return {r["state"]: int(r["n"]) for r in rows}
