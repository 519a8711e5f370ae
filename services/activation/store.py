"""The only module of the activation service that speaks SQL (schema ``activation``)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from chassis import outbox
from services.activation.domain.lifecycle import AgentState
from services.activation.domain.routing import AgentSnapshot
from services.activation.domain.status import AgentStatusView, CallRecord

# NOTIFY channel every change RouteCall depends on is announced on (payload: agent name).
ROUTING_CHANNEL = "activation_routing"


def version_name(agent: str, number: int) -> str:
    """tenants/{t}/agents/{a}/versions/{n}"""
    return f"{agent}/versions/{number}"


def version_number(name: str) -> int:
    """The {n} of a version name (names are validated before they reach the store)."""
    return int(name.rsplit("/", 1)[1])


@dataclass(frozen=True)
class AgentRow:
    """An agent row as locked inside a transaction."""

    name: str
    state: AgentState
    live_version: int | None
    live_sha256: str | None
    rev: int
    update_time: datetime


@dataclass(frozen=True)
class DeploymentRow:
    """A version that has been live."""

    version: int
    bundle_sha256: str
    deploy_time: datetime


class Tx:
    """Statements on one connection: in one transaction (ActivationStore.transaction) or each atomic alone."""

    def __init__(self, con: asyncpg.Connection) -> None:
        self.con = con

    async def lock_request(self, request_id: uuid.UUID) -> None:
        """Serialise transactions carrying the same request_id."""
        await self.con.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))", str(request_id))

    async def recall(self, request_id: uuid.UUID) -> tuple[str, str, bytes] | None:
        """(method, fingerprint, response) stored for a request_id, if any."""
        row = await self.con.fetchrow(
            "SELECT method, fingerprint, response FROM requests WHERE request_id = $1", request_id
        )
        return None if row is None else (row["method"], row["fingerprint"], bytes(row["response"]))

    async def remember(self, request_id: uuid.UUID, method: str, fingerprint: str, response: bytes) -> None:
        """Keep the first answer of a request_id."""
        await self.con.execute(
            "INSERT INTO requests (request_id, method, fingerprint, response) VALUES ($1, $2, $3, $4)",
            request_id,
            method,
            fingerprint,
            response,
        )

    async def ensure_agent(self, agent: str, tenant: str) -> None:
        """Create the agent in state DRAFT if the runtime has never heard of it."""
        await self.con.execute(
            "INSERT INTO agents (name, tenant) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", agent, tenant
        )

    async def lock_agent(self, agent: str) -> AgentRow | None:
        """Lock and read the agent row (None if unknown)."""
        row = await self.con.fetchrow(
            "SELECT name, state, live_version, live_sha256, rev, update_time FROM agents WHERE name = $1 FOR UPDATE",
            agent,
        )
        return None if row is None else _agent_row(row)

    async def agent_for_deploy(self, agent: str, tenant: str) -> AgentRow:
        """Read the agent a deploy targets, creating it (as a DRAFT) if the runtime never saw it.

        One statement: the no-op DO UPDATE returns the latest committed values, new or not; in
        autocommit its row lock ends with the statement (make_live compares and sets instead).
        """
        row = await self.con.fetchrow(
            # The no-op update costs a row version per deploy (retries included): the price of
            # reading the agent in the same statement that may create it.
            "INSERT INTO agents (name, tenant) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET rev = agents.rev "
            "RETURNING name, state, live_version, live_sha256, rev, update_time",
            agent,
            tenant,
        )
        return _agent_row(row)

    async def bundle(self, sha256: str) -> bytes | None:
        """The canonical bytes stored under a content hash."""
        value = await self.con.fetchval("SELECT canonical FROM bundles WHERE sha256 = $1", sha256)
        return None if value is None else bytes(value)

    async def deployment(self, agent: str, version: int) -> DeploymentRow | None:
        """The record of a version that has been live, if it has."""
        row = await self.con.fetchrow(
            "SELECT version, bundle_sha256, deploy_time FROM deployments WHERE agent = $1 AND version = $2",
            agent,
            version,
        )
        return None if row is None else DeploymentRow(row["version"], row["bundle_sha256"], row["deploy_time"])

    async def make_live(
        self,
        agent: str,
        version: int,
        sha256: str,
        canonical: bytes,
        previous: int | None,
        at: datetime,
        event: outbox.Outgoing,
    ) -> bool:
        """Compare-and-set the live version from ``previous`` up to ``version``; False if it moved.

        One statement, atomic on its own: the bundle (stored once per content hash), the
        deployment record, the routing NOTIFY and the outbox row are written only if the
        compare-and-set succeeds.
        """
        args = (agent, version, sha256, previous, at, ROUTING_CHANNEL, canonical)
        row = await self.con.fetchrow(
            # $5 is this host's clock (the event carries it): greatest() keeps update_time from
            # going backwards when replicas' clocks disagree with each other or with PostgreSQL's.
            "WITH up AS (UPDATE agents SET live_version = $2, live_sha256 = $3, rev = rev + 1, "
            "update_time = greatest(update_time, $5) "
            "WHERE name = $1 AND live_version IS NOT DISTINCT FROM $4::bigint AND $2 > coalesce($4::bigint, 0) "
            "RETURNING name), "
            "b AS (INSERT INTO bundles (sha256, canonical) SELECT $3, $7 FROM up ON CONFLICT (sha256) DO NOTHING), "
            "dep AS (INSERT INTO deployments (agent, version, bundle_sha256, previous_version, deploy_time) "
            "SELECT $1, $2, $3, $4::bigint, $5 FROM up), "
            f"{outbox.insert_select_sql(len(args) + 1, 'up', 'ann')} "
            # The routing NOTIFY is delivered at commit, and only if the statement changed live.
            "SELECT (SELECT id FROM ann) AS outbox_id, (SELECT pg_notify($6, $1) FROM up) AS routed"
            f"{outbox.notify_sql('ann')}",
            *args,
            *event.params(),
        )
        if row is None or row["outbox_id"] is None:
            return False
        outbox.written([(row["outbox_id"], event.message_id)], [event])
        return True

    async def set_state(self, agent: str, old: AgentState, new: AgentState) -> datetime:
        """Compare-and-set the lifecycle state; return the change time."""
        changed = await self.con.fetchval(
            "UPDATE agents SET state = $3, rev = rev + 1, update_time = now() "
            "WHERE name = $1 AND state = $2 RETURNING update_time",
            agent,
            old.value,
            new.value,
        )
        if changed is None:
            raise RuntimeError(f"state of {agent} moved while locked")
        await self._announce(agent)
        return changed

    async def phone_numbers(self, agent: str) -> list[str]:
        """The agent's numbers, sorted."""
        rows = await self.con.fetch("SELECT number FROM phone_numbers WHERE agent = $1 ORDER BY number", agent)
        return [r["number"] for r in rows]

    async def claim_number(self, number: str, agent: str) -> str | None:
        """Assign a free number to the agent; return the owner (this agent, another, or None).

        The primary key on number decides between concurrent claimants: the loser's insert waits
        for the winner's commit and then does nothing.
        """
        inserted = await self.con.fetchval(
            "INSERT INTO phone_numbers (number, agent) VALUES ($1, $2) ON CONFLICT (number) DO NOTHING RETURNING agent",
            number,
            agent,
        )
        if inserted is not None:
            await self._bump(agent)
            return agent
        return await self.con.fetchval("SELECT agent FROM phone_numbers WHERE number = $1", number)

    async def release_number(self, number: str, agent: str) -> bool:
        """Remove the number from the agent; False if the agent does not hold it."""
        released = await self.con.fetchval(
            "DELETE FROM phone_numbers WHERE number = $1 AND agent = $2 RETURNING number", number, agent
        )
        if released is None:
            return False
        await self._bump(agent)
        return True

    async def status(self, agent: str) -> AgentStatusView | None:
        """The agent's status as this transaction sees it."""
        return await _status(self.con, agent)

    async def _bump(self, agent: str) -> None:
        await self.con.execute("UPDATE agents SET rev = rev + 1, update_time = now() WHERE name = $1", agent)
        await self._announce(agent)

    async def _announce(self, agent: str) -> None:
        # Delivered at commit, and only if the transaction commits.
        await self.con.execute("SELECT pg_notify($1, $2)", ROUTING_CHANNEL, agent)


def _agent_row(row: asyncpg.Record) -> AgentRow:
    return AgentRow(
        row["name"], AgentState(row["state"]), row["live_version"], row["live_sha256"], row["rev"], row["update_time"]
    )


async def _status(con: asyncpg.Connection, agent: str) -> AgentStatusView | None:
    row = await con.fetchrow("SELECT state, live_version, update_time FROM agents WHERE name = $1", agent)
    if row is None:
        return None
    numbers = await con.fetch("SELECT number FROM phone_numbers WHERE agent = $1 ORDER BY number", agent)
    calls = await con.fetch(
        "SELECT version, count(*) AS n FROM calls WHERE agent = $1 AND end_time IS NULL "
        "GROUP BY version ORDER BY version",
        agent,
    )
    live = row["live_version"]
    return AgentStatusView(
        name=agent,
        state=AgentState(row["state"]),
        live_version=None if live is None else version_name(agent, live),
        phone_numbers=tuple(r["number"] for r in numbers),
        active_calls_by_version=tuple((version_name(agent, r["version"]), r["n"]) for r in calls),
        update_time=row["update_time"],
    )


def _call(row: asyncpg.Record) -> CallRecord:
    return CallRecord(
        call_id=row["id"],
        agent=row["agent"],
        version=version_name(row["agent"], row["version"]),
        bundle_sha256=row["bundle_sha256"],
        called_number=row["called_number"],
        caller_number=row["caller_number"],
        start_time=row["start_time"],
        end_time=row["end_time"],
    )


_CALL_COLUMNS = "id, agent, version, bundle_sha256, called_number, caller_number, start_time, end_time"


_INSERT_CALLS = (
    "INSERT INTO calls (id, agent, version, bundle_sha256, called_number, caller_number, start_time) "
    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], "
    "$7::timestamptz[])"
)


class CallWriter:
    """Pins batches of new calls over a connection of its own (group commit of RouteCall).

    A dedicated connection spares each batch the pool's acquire and reset round trip; it is
    reopened after any failure, since a failed connection may be unusable.
    """

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self._connect = connect
        self._con: asyncpg.Connection | None = None

    async def insert(self, calls: Sequence[CallRecord]) -> None:
        """Insert the batch in one statement, committed before returning."""
        if self._con is None or self._con.is_closed():
            self._con = await self._connect()
        try:
            await self._con.execute(
                _INSERT_CALLS,
                [c.call_id for c in calls],
                [c.agent for c in calls],
                [version_number(c.version) for c in calls],
                [c.bundle_sha256 for c in calls],
                [c.called_number for c in calls],
                [c.caller_number for c in calls],
                [c.start_time for c in calls],
            )
        except BaseException:
            con, self._con = self._con, None
            con.terminate()
            raise

    async def close(self) -> None:
        """Close the connection (if open)."""
        con, self._con = self._con, None
        if con is not None and not con.is_closed():
            await con.close(timeout=5)


class ActivationStore:
    """Repository over the activation schema."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        after_commit: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        self._pool = pool
        # Wraps each transaction (the outbox relay's hand-over of the rows it wrote, see chassis.outbox).
        self._after_commit = after_commit

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """One transaction; an exception rolls everything back."""
        async with self._after_commit(), self._pool.acquire() as con, con.transaction():
            yield Tx(con)

    @asynccontextmanager
    async def statements(self) -> AsyncIterator[Tx]:
        """A connection in autocommit: for steps that are each one atomic statement (no BEGIN/COMMIT)."""
        async with self._after_commit(), self._pool.acquire() as con:
            yield Tx(con)

    async def status(self, agent: str) -> AgentStatusView | None:
        """The agent's status, or None if the runtime has never heard of it."""
        async with self._pool.acquire() as con, con.transaction(isolation="repeatable_read", readonly=True):
            return await _status(con, agent)

    async def active_call_count(self) -> int:
        """Calls in progress across every agent (served from the partial index of active calls)."""
        async with self._pool.acquire() as con:
            return int(await con.fetchval("SELECT count(*) FROM calls WHERE end_time IS NULL"))

    async def get_call(self, call_id: uuid.UUID) -> CallRecord | None:
        """A call by id."""
        async with self._pool.acquire() as con:
            row = await con.fetchrow(f"SELECT {_CALL_COLUMNS} FROM calls WHERE id = $1", call_id)
        return None if row is None else _call(row)

    async def end_call(self, call_id: uuid.UUID) -> CallRecord | None:
        """End a call in progress (an ended call stays as it was); None if unknown."""
        async with self._pool.acquire() as con:
            row = await con.fetchrow(
                f"UPDATE calls SET end_time = clock_timestamp() WHERE id = $1 AND end_time IS NULL "
                f"RETURNING {_CALL_COLUMNS}",
                call_id,
            )
            if row is None:
                row = await con.fetchrow(f"SELECT {_CALL_COLUMNS} FROM calls WHERE id = $1", call_id)
        return None if row is None else _call(row)

    async def routing_snapshots(self, agents: Sequence[str] | None = None) -> list[AgentSnapshot]:
        """Routing facts of the given agents (all when None), read in one consistent snapshot."""
        query = (
            "SELECT a.name, a.state, a.live_version, a.live_sha256, a.rev, "
            "coalesce(array_agg(p.number ORDER BY p.number) FILTER (WHERE p.number IS NOT NULL), '{}') "
            "AS numbers FROM agents a LEFT JOIN phone_numbers p ON p.agent = a.name "
        )
        async with self._pool.acquire() as con:
            if agents is None:
                rows = await con.fetch(query + "GROUP BY a.name")
            else:
                rows = await con.fetch(query + "WHERE a.name = ANY($1::text[]) GROUP BY a.name", list(agents))
        return [
            AgentSnapshot(
                agent=r["name"],
                state=AgentState(r["state"]),
                live_version=None if r["live_version"] is None else version_name(r["name"], r["live_version"]),
                bundle_sha256=r["live_sha256"],
                phone_numbers=tuple(r["numbers"]),
                rev=r["rev"],
            )
            for r in rows
        ]

    async def routing_fingerprint(self) -> tuple[int, int]:
        """(agents, sum of revisions): changes whenever anything RouteCall depends on commits."""
        async with self._pool.acquire() as con:
            row = await con.fetchrow("SELECT count(*) AS n, coalesce(sum(rev), 0)::bigint AS s FROM agents")
        return int(row["n"]), int(row["s"])

    async def routing_revisions(self) -> dict[str, int]:
        """Committed revision of every agent."""
        async with self._pool.acquire() as con:
            rows = await con.fetch("SELECT name, rev FROM agents")
        return {r["name"]: r["rev"] for r in rows}
