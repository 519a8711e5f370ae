"""The notifier's only SQL: job read model, durable feed, notifications and maintenance notices."""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from services.notifier.domain.jobs import JobKey, Revision, accepted_in_order
from services.notifier.domain.notifications import SystemNotice
from speako.config.v1 import resources_pb2
from speako.notifier.v1 import resources_pb2 as notifier_pb2

FEED_CHANNEL = "notifier_feed"
SYSTEM = notifier_pb2.Notification.CATEGORY_SYSTEM
MAINTENANCE = notifier_pb2.Notification.CATEGORY_MAINTENANCE


class ApplyOutcome(enum.Enum):
    """What happened to one job event."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # this message_id was applied before
    STALE = "stale"  # an equal or higher sequence (or a terminal state) is already stored


@dataclass(frozen=True)
class JobChange:
    """One JobStateChanged delivery to apply: its dedupe key, where the job belongs, the event."""

    message_id: str
    key: JobKey
    job: resources_pb2.PublishJob
    sequence: int
    failure: SystemNotice | None = None


FeedEntry = tuple[str, str | None, str | None, str, bytes]  # kind, tenant, agent, subject, payload


@dataclass(frozen=True)
class FeedRow:
    """One feed entry as stored."""

    position: int
    kind: str
    tenant: str | None
    agent: str | None
    subject: str
    payload: bytes


@dataclass(frozen=True)
class FeedHead:
    """The feed's identity and bounds: positions in (pruned_through, last_position] are served."""

    epoch: str
    last_position: int
    pruned_through: int


@dataclass(frozen=True)
class Replay:
    """A page of a tenant's or agent's job entries, read in one snapshot with the feed bounds."""

    head: FeedHead
    rows: list[FeedRow]


@dataclass(frozen=True)
class StoredJob:
    """A job of the read model and the feed position of its latest accepted change."""

    job: resources_pb2.PublishJob
    position: int


def _ts(value: datetime | None) -> Timestamp:
    out = Timestamp()
    if value is not None:
        out.FromDatetime(value)
    return out


def _dt(value: Timestamp) -> datetime | None:
    if value.seconds == 0 and value.nanos == 0:
        return None
    return value.ToDatetime(tzinfo=UTC)


def micros(value: datetime) -> int:
    """A timestamp as integer microseconds since the epoch (exact for PostgreSQL timestamps)."""
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """Inverse of ``micros``."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


def _feed_row(r: asyncpg.Record) -> FeedRow:
    return FeedRow(r["position"], r["kind"], r["tenant"], r["agent"], r["subject"], bytes(r["payload"]))


_FEED_COLUMNS = "position, kind, tenant, agent, subject, payload"
# The rows of the jobs named in {names}, locked in name order (two replicas' batches never deadlock).
_LOCK_JOBS = "SELECT name, sequence, state FROM jobs WHERE name = ANY({names}::text[]) ORDER BY name FOR UPDATE"


class NotifierStore:
    """Repository over the ``notifier`` schema; every method runs its own transaction."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # ---- feed ---------------------------------------------------------------------------------

    async def head(self) -> FeedHead:
        """The feed's epoch, last position and pruned bound."""
        async with self._pool.acquire() as con:
            r = await con.fetchrow("SELECT epoch, last_position, pruned_through FROM feed_state WHERE id = 1")
        return FeedHead(r["epoch"], r["last_position"], r["pruned_through"])

    async def read_feed(self, after: int, limit: int) -> list[FeedRow]:
        """Entries after ``after`` in position order (the tailer's read)."""
        async with self._pool.acquire() as con:
            rows = await con.fetch(
                f"SELECT {_FEED_COLUMNS} FROM feed WHERE position > $1 ORDER BY position LIMIT $2",
                after,
                limit,
            )
        return [_feed_row(r) for r in rows]

    async def replay_jobs(self, *, tenant: str, agent: str | None, after: int, limit: int) -> Replay:
        """Job entries of a tenant (or one agent) after ``after``, with the bounds of the same snapshot."""
        async with self._pool.acquire() as con, con.transaction(isolation="repeatable_read", readonly=True):
            h = await con.fetchrow("SELECT epoch, last_position, pruned_through FROM feed_state WHERE id = 1")
            if agent is None:
                rows = await con.fetch(
                    f"SELECT {_FEED_COLUMNS} FROM feed WHERE kind = 'job' AND tenant = $1 AND position > $2 "
                    "ORDER BY position LIMIT $3",
                    tenant,
                    after,
                    limit,
                )
            else:
                rows = await con.fetch(
                    f"SELECT {_FEED_COLUMNS} FROM feed WHERE kind = 'job' AND agent = $1 AND position > $2 "
                    "ORDER BY position LIMIT $3",
                    agent,
                    after,
                    limit,
                )
        return Replay(FeedHead(h["epoch"], h["last_position"], h["pruned_through"]), [_feed_row(r) for r in rows])

    @staticmethod
    async def _append(
        con: asyncpg.Connection,
        entries: Sequence[FeedEntry],
        job_positions: Sequence[tuple[str, int, JobChange | None]] = (),
    ) -> int:
        """Append entries (kind, tenant, agent, subject, payload); returns the first position.

        ``job_positions`` (job name, index into ``entries``, change) also records each job's latest
        entry and, when a change is given, stores it on the job's (locked) row in the same update.
        One statement: it takes the feed_state row lock, which is held until commit so positions
        commit in order (a reader of "position > last" never skips one); callers append last in
        their transaction, once per transaction, to keep that lock short.
        """
        n = len(entries)
        changes = [c for _, _, c in job_positions]
        row = await con.fetchrow(
            """
            WITH s AS (
                UPDATE feed_state SET last_position = last_position + $1 WHERE id = 1
                RETURNING last_position - $1 AS base
            ), f AS (
                INSERT INTO feed (position, kind, tenant, agent, subject, payload)
                SELECT s.base + e.ord, e.kind, e.tenant, e.agent, e.subject, e.payload
                FROM s, unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[])
                     WITH ORDINALITY AS e(kind, tenant, agent, subject, payload, ord)
            ), j AS (
                UPDATE jobs SET position = s.base + p.ord, state = coalesce(p.state, jobs.state),
                    sequence = coalesce(p.sequence, jobs.sequence),
                    update_time = coalesce(p.update_time, jobs.update_time), job = coalesce(p.job, jobs.job)
                FROM s, unnest($7::text[], $8::bigint[], $10::smallint[], $11::bigint[], $12::timestamptz[],
                               $13::bytea[]) AS p(name, ord, state, sequence, update_time, job)
                WHERE jobs.name = p.name
            )
            SELECT s.base + 1 AS first, pg_notify($9, (s.base + $1)::text) FROM s
            """,
            n,
            [e[0] for e in entries],
            [e[1] for e in entries],
            [e[2] for e in entries],
            [e[3] for e in entries],
            [e[4] for e in entries],
            [name for name, _, _ in job_positions],
            [index + 1 for _, index, _ in job_positions],
            FEED_CHANNEL,
            [None if c is None else c.job.state for c in changes],
            [None if c is None else c.sequence for c in changes],
            [None if c is None else _dt(c.job.update_time) or datetime.now(UTC) for c in changes],
            [None if c is None else c.job.SerializeToString() for c in changes],
        )
        return int(row["first"])

    async def prune(self, older_than: timedelta) -> int:
        """Drop feed entries and dedupe keys older than the retention; returns entries dropped."""
        cutoff = datetime.now(UTC) - older_than
        async with self._pool.acquire() as con, con.transaction():
            through = await con.fetchval("SELECT max(position) FROM feed WHERE created_at < $1", cutoff)
            dropped = 0
            if through is not None:
                status = await con.execute("DELETE FROM feed WHERE position <= $1", through)
                dropped = int(status.split()[-1])
                await con.execute(
                    "UPDATE feed_state SET pruned_through = greatest(pruned_through, $1) WHERE id = 1",
                    through,
                )
            await con.execute("DELETE FROM processed_messages WHERE processed_at < $1", cutoff)
        return dropped

    # ---- jobs ---------------------------------------------------------------------------------

    async def apply_job_event(
        self,
        message_id: str,
        key: JobKey,
        job: resources_pb2.PublishJob,
        sequence: int,
        failure: SystemNotice | None,
    ) -> ApplyOutcome:
        """Apply one JobStateChanged (see ``apply_job_events``)."""
        return (await self.apply_job_events([JobChange(message_id, key, job, sequence, failure)]))[0]

    async def apply_job_events(
        self, changes: Sequence[JobChange], *, appended: list[FeedRow] | None = None
    ) -> list[ApplyOutcome]:
        """Apply a batch of JobStateChanged in delivery order, in one transaction; an outcome each.

        Dedupe on message_id, compare-and-set on sequence (each event judged against the job as the
        events before it left it), one feed entry per accepted change, at most one System
        notification per failed job. The statements are per batch, not per event, and the feed
        position lock is taken once, by the last statement before COMMIT. ``appended`` receives
        the feed rows the batch wrote, once committed.
        """
        outcomes = [ApplyOutcome.DUPLICATE] * len(changes)
        if not changes:
            return outcomes
        now = datetime.now(UTC)
        async with self._pool.acquire() as con, con.transaction():
            # One round trip: the dedupe keys (sorted, so two replicas' batches take the unique-index
            # locks in the same order), then the batch's job rows, locked.
            rows = await con.fetch(
                "WITH fresh AS (INSERT INTO processed_messages (message_id) SELECT m FROM unnest($1::text[]) AS m "
                "ON CONFLICT DO NOTHING RETURNING message_id), "
                f"locked AS ({_LOCK_JOBS.format(names='$2')}) "
                "SELECT message_id, NULL AS name, NULL::bigint AS sequence, NULL::smallint AS state FROM fresh "
                "UNION ALL SELECT NULL, name, sequence, state FROM locked",
                sorted({c.message_id for c in changes}),
                sorted({c.key.name for c in changes}),
            )
            fresh = {r["message_id"] for r in rows if r["message_id"] is not None}
            current = {r["name"]: Revision(r["sequence"], r["state"]) for r in rows if r["name"] is not None}
            by_job: dict[str, list[int]] = {}
            for i, c in enumerate(changes):
                if c.message_id in fresh:
                    fresh.discard(c.message_id)  # a repeat inside the batch is a duplicate too
                    by_job.setdefault(c.key.name, []).append(i)
            accepted: dict[str, list[int]] = {}
            inserted: set[str] = set()
            todo = sorted(by_job)
            while todo:
                new_jobs = []
                for name in todo:
                    idx = by_job[name]
                    ok = accepted_in_order(
                        current.get(name), [Revision(changes[i].sequence, changes[i].job.state) for i in idx]
                    )
                    accepted[name] = [i for i, a in zip(idx, ok, strict=True) if a]
                    if name not in current and accepted[name]:
                        new_jobs.append(name)
                won = await self._insert_jobs(con, [changes[accepted[n][-1]] for n in new_jobs], now)
                inserted |= won
                # Another replica inserted a job between our read and insert: decide those again.
                todo = [n for n in new_jobs if n not in won]
                if todo:
                    locked = await con.fetch(_LOCK_JOBS.format(names="$1"), todo)
                    current = {r["name"]: Revision(r["sequence"], r["state"]) for r in locked}
            applied = sorted(i for ids in accepted.values() for i in ids)
            for idx in by_job.values():
                for i in idx:
                    outcomes[i] = ApplyOutcome.STALE
            for i in applied:
                outcomes[i] = ApplyOutcome.APPLIED
            notifications = await self._insert_failures(con, [changes[i] for i in applied], now)
            entries: list[FeedEntry] = []
            latest: dict[str, int] = {}
            for i in applied:
                c = changes[i]
                latest[c.key.name] = len(entries)
                entries.append(("job", c.key.tenant, c.key.agent, c.key.name, c.job.SerializeToString()))
                notification = notifications.get(c.key.name) if c.failure is not None else None
                if notification is not None:
                    entries.append(
                        ("notification", c.key.tenant, None, notification.name, notification.SerializeToString())
                    )
            first = 0
            if entries:
                # A job stored before this batch gets its latest accepted change with its position.
                positions = [
                    (name, index, None if name in inserted else changes[accepted[name][-1]])
                    for name, index in latest.items()
                ]
                first = await self._append(con, entries, positions)
        if appended is not None and entries:
            appended.extend(FeedRow(first + k, *entry) for k, entry in enumerate(entries))
        return outcomes

    @staticmethod
    async def _insert_jobs(con: asyncpg.Connection, changes: Sequence[JobChange], now: datetime) -> set[str]:
        """Insert jobs not yet stored (position set by the append); the names actually inserted."""
        if not changes:
            return set()
        rows = await con.fetch(
            "INSERT INTO jobs (name, tenant, agent, state, sequence, create_time, update_time, job, position) "
            "SELECT u.*, 0 FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::bigint[], "
            "$6::timestamptz[], $7::timestamptz[], $8::bytea[]) AS u "
            "ON CONFLICT (name) DO NOTHING RETURNING name",
            [c.key.name for c in changes],
            [c.key.tenant for c in changes],
            [c.key.agent for c in changes],
            [c.job.state for c in changes],
            [c.sequence for c in changes],
            [_dt(c.job.create_time) or now for c in changes],
            [_dt(c.job.update_time) or now for c in changes],
            [c.job.SerializeToString() for c in changes],
        )
        return {r["name"] for r in rows}

    async def get_job(self, name: str) -> StoredJob | None:
        """The latest accepted state of a job, or None when never heard of."""
        async with self._pool.acquire() as con:
            r = await con.fetchrow("SELECT job, position FROM jobs WHERE name = $1", name)
        if r is None:
            return None
        return StoredJob(resources_pb2.PublishJob.FromString(r["job"]), r["position"])

    async def list_jobs(
        self,
        *,
        tenant: str,
        agent: str | None,
        states: Sequence[int],
        start: datetime | None,
        end: datetime | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[tuple[resources_pb2.PublishJob, datetime]]:
        """Jobs newest first (create_time, then name, descending) after a keyset cursor."""
        async with self._pool.acquire() as con:
            rows = await con.fetch(
                "SELECT job, create_time FROM jobs WHERE tenant = $1 AND ($2::text IS NULL OR agent = $2) "
                "AND (cardinality($3::smallint[]) = 0 OR state = ANY($3::smallint[])) "
                "AND ($4::timestamptz IS NULL OR create_time >= $4) "
                "AND ($5::timestamptz IS NULL OR create_time < $5) "
                "AND ($6::timestamptz IS NULL OR (create_time, name) < ($6, $7::text)) "
                "ORDER BY create_time DESC, name DESC LIMIT $8",
                tenant,
                agent,
                list(states),
                start,
                end,
                after[0] if after else None,
                after[1] if after else None,
                limit,
            )
        return [(resources_pb2.PublishJob.FromString(r["job"]), r["create_time"]) for r in rows]

    # ---- notifications ------------------------------------------------------------------------

    @staticmethod
    async def _insert_failures(
        con: asyncpg.Connection, changes: Sequence[JobChange], now: datetime
    ) -> dict[str, notifier_pb2.Notification]:
        """Insert the System notification of each accepted failure; job name -> new notification.

        A job that already has one (UNIQUE publish_job) gets none: exactly one per failed job.
        """
        failed = [c for c in changes if c.failure is not None]
        if not failed:
            return {}
        rows = await con.fetch(
            "INSERT INTO notifications (id, tenant, publish_job, agent, version, title, message, error, "
            "changed_sections, create_time) "
            "SELECT u.id, u.tenant, u.publish_job, u.agent, u.version, u.title, u.message, u.error, "
            "ARRAY(SELECT jsonb_array_elements_text(u.sections)), u.create_time "
            "FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], "
            "$8::bytea[], $9::jsonb[], $10::timestamptz[]) "
            "AS u(id, tenant, publish_job, agent, version, title, message, error, sections, create_time) "
            "ON CONFLICT (publish_job) DO NOTHING RETURNING *",
            [uuid.uuid4() for _ in failed],
            [c.key.tenant for c in failed],
            [c.key.name for c in failed],
            [c.key.agent for c in failed],
            [c.job.version for c in failed],
            [c.failure.title for c in failed if c.failure is not None],
            [c.failure.message for c in failed if c.failure is not None],
            [c.job.error.SerializeToString() for c in failed],
            [json.dumps(list(c.job.changed_sections)) for c in failed],
            [_dt(c.job.update_time) or now for c in failed],
        )
        return {r["publish_job"]: _system_notification(r) for r in rows}

    async def list_notifications(
        self,
        *,
        tenant: str,
        categories: Sequence[int],
        unread_only: bool,
        after: tuple[datetime, str] | None,
        limit: int,
        now: datetime,
    ) -> list[tuple[notifier_pb2.Notification, datetime, str]]:
        """A tenant's System notifications and current maintenance notices, newest first."""
        async with self._pool.acquire() as con:
            rows = await con.fetch(
                """
                SELECT * FROM (
                    SELECT 1 AS category, id::text AS key, create_time AS sort_time, title, message,
                           read_time IS NOT NULL AS read, agent, version, publish_job, error,
                           changed_sections, NULL::timestamptz AS start_time, NULL::timestamptz AS end_time
                    FROM notifications
                    WHERE 1 = ANY($2::int[]) AND tenant = $1 AND (NOT $3 OR read_time IS NULL)
                    UNION ALL
                    SELECT 2, n.id::text, greatest(n.create_time, n.start_time), n.title, n.message,
                           r.read_time IS NOT NULL, '', '', '', NULL, '{}'::text[], n.start_time, n.end_time
                    FROM notices n LEFT JOIN notice_reads r ON r.notice_id = n.id AND r.tenant = $1
                    WHERE 2 = ANY($2::int[]) AND n.start_time <= $4 AND n.end_time > $4
                          AND (NOT $3 OR r.read_time IS NULL)
                ) u
                WHERE $5::timestamptz IS NULL OR (sort_time, key) < ($5, $6::text)
                ORDER BY sort_time DESC, key DESC
                LIMIT $7
                """,
                tenant,
                list(categories),
                unread_only,
                now,
                after[0] if after else None,
                after[1] if after else None,
                limit,
            )
        out = []
        for r in rows:
            n = notifier_pb2.Notification(
                name=f"{tenant}/notifications/{r['key']}",
                category=r["category"],
                title=r["title"],
                message=r["message"],
                create_time=_ts(r["sort_time"]),
                read=r["read"],
            )
            if r["category"] == SYSTEM:
                n.agent, n.version, n.publish_job = r["agent"], r["version"], r["publish_job"]
                n.error.CopyFrom(resources_pb2.PublishError.FromString(r["error"]))
                n.changed_sections.extend(r["changed_sections"])
            else:
                n.notice = f"notices/{r['key']}"
                n.start_time.CopyFrom(_ts(r["start_time"]))
                n.end_time.CopyFrom(_ts(r["end_time"]))
            out.append((n, r["sort_time"], r["key"]))
        return out

    async def mark_read(
        self, tenant: str, notification_id: uuid.UUID, now: datetime
    ) -> notifier_pb2.Notification | None:
        """Mark a System notification or a current maintenance notice read for a tenant.

        Returns the notification (read), or None when the tenant has no such notification.
        A first read is appended to the feed so the tenant's other watchers see it.
        """
        async with self._pool.acquire() as con, con.transaction():
            row = await con.fetchrow(
                "SELECT *, read_time IS NOT NULL AS was_read FROM notifications "
                "WHERE tenant = $1 AND id = $2 FOR UPDATE",
                tenant,
                notification_id,
            )
            if row is not None:
                if not row["was_read"]:
                    await con.execute("UPDATE notifications SET read_time = $2 WHERE id = $1", notification_id, now)
                notification = _system_notification(row)
                notification.read = True
                changed = not row["was_read"]
            else:
                notice = await con.fetchrow(
                    "SELECT * FROM notices WHERE id = $1 AND start_time <= $2 AND end_time > $2",
                    notification_id,
                    now,
                )
                if notice is None:
                    return None
                changed = (
                    await con.fetchval(
                        "INSERT INTO notice_reads (tenant, notice_id, read_time) VALUES ($1, $2, $3) "
                        "ON CONFLICT DO NOTHING RETURNING 1",
                        tenant,
                        notification_id,
                        now,
                    )
                    is not None
                )
                notification = notice_notification(tenant, notice_from_row(notice), read=True)
            if changed:
                await self._append(
                    con, [("notification", tenant, None, notification.name, notification.SerializeToString())]
                )
        return notification

    async def create_notice(
        self,
        *,
        title: str,
        message: str,
        start: datetime,
        end: datetime,
        creator: str,
        request_id: uuid.UUID | None,
        now: datetime,
    ) -> notifier_pb2.MaintenanceNotice:
        """Store a maintenance notice (a repeated request_id returns the first one) and announce it."""
        async with self._pool.acquire() as con, con.transaction():
            if request_id is not None:
                existing = await con.fetchrow("SELECT * FROM notices WHERE request_id = $1", request_id)
                if existing is not None:
                    return notice_from_row(existing)
            row = await con.fetchrow(
                "INSERT INTO notices "
                "(id, title, message, start_time, end_time, create_time, creator, request_id) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (request_id) DO NOTHING RETURNING *",
                uuid.uuid4(),
                title,
                message,
                start,
                end,
                now,
                creator,
                request_id,
            )
            if row is None:  # a concurrent request with the same request_id won
                row = await con.fetchrow("SELECT * FROM notices WHERE request_id = $1", request_id)
                return notice_from_row(row)
            notice = notice_from_row(row)
            await self._append(con, [("notice", None, None, notice.name, notice.SerializeToString())])
        return notice

    async def pending_notices(self, now: datetime) -> list[notifier_pb2.MaintenanceNotice]:
        """Notices current now or starting later, soonest first."""
        async with self._pool.acquire() as con:
            rows = await con.fetch("SELECT * FROM notices WHERE end_time > $1 ORDER BY start_time, id", now)
        return [notice_from_row(r) for r in rows]

    async def notice_read(self, tenant: str, notice_id: str) -> bool:
        """Whether a tenant has read a maintenance notice."""
        async with self._pool.acquire() as con:
            return bool(
                await con.fetchval(
                    "SELECT 1 FROM notice_reads WHERE tenant = $1 AND notice_id = $2",
                    tenant,
                    uuid.UUID(notice_id),
                )
            )


def _system_notification(row: asyncpg.Record) -> notifier_pb2.Notification:
    n = notifier_pb2.Notification(
        name=f"{row['tenant']}/notifications/{row['id']}",
        category=SYSTEM,
        title=row["title"],
        message=row["message"],
        create_time=_ts(row["create_time"]),
        read=row["read_time"] is not None,
        agent=row["agent"],
        version=row["version"],
        publish_job=row["publish_job"],
        changed_sections=list(row["changed_sections"]),
    )
    n.error.CopyFrom(resources_pb2.PublishError.FromString(row["error"]))
    return n


def notice_from_row(row: asyncpg.Record) -> notifier_pb2.MaintenanceNotice:
    """A notices row as a MaintenanceNotice."""
    return notifier_pb2.MaintenanceNotice(
        name=f"notices/{row['id']}",
        title=row["title"],
        message=row["message"],
        start_time=_ts(row["start_time"]),
        end_time=_ts(row["end_time"]),
        create_time=_ts(row["create_time"]),
        creator=row["creator"],
    )


def notice_notification(
    tenant: str, notice: notifier_pb2.MaintenanceNotice, *, read: bool
) -> notifier_pb2.Notification:
    """How a maintenance notice shows in a tenant's Notification Center."""
    notice_id = notice.name.removeprefix("notices/")
    start = notice.start_time.ToDatetime(tzinfo=UTC)
    created = notice.create_time.ToDatetime(tzinfo=UTC)
    return notifier_pb2.Notification(
        name=f"{tenant}/notifications/{notice_id}",
        category=MAINTENANCE,
        title=notice.title,
        message=notice.message,
        create_time=_ts(max(start, created)),
        read=read,
        notice=notice.name,
        start_time=notice.start_time,
        end_time=notice.end_time,
    )
