"""The one checker of DESIGN.md section 6 used by every fault scenario.

It drives publishes through the public API (retrying a PublishDraft with the same request_id until
it is accepted, as a dashboard would), watches the tenant's WatchPublishJobs stream (resuming with
its token whenever the stream breaks) and samples every agent's live version. Afterwards it counts:

- lost: accepted by PublishDraft but not terminal within the bound (in the notifier's read model or
  in the publisher's own table), or a FAILED job without its System notification;
- duplicated: one request_id answered with two jobs, two different terminal outcomes for one job
  (seen on the stream, or notifier vs publisher), or more than one notification for a failed job;
- backwards: a job's state regressing on the stream, an agent's live version decreasing between
  samples, or ending below the newest version a PUBLISHED job reported;
- recovery: seconds from the moment the fault was cleared until every accepted job was terminal.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import asyncpg
import grpc
import grpc.aio

from speako.activation.v1 import activation_service_pb2 as act
from speako.activation.v1 import activation_service_pb2_grpc as act_grpc
from speako.config.v1 import config_service_pb2 as cfg
from speako.config.v1 import config_service_pb2_grpc as cfg_grpc
from speako.config.v1 import resources_pb2 as res
from speako.notifier.v1 import notifier_service_pb2 as ntf
from speako.notifier.v1 import notifier_service_pb2_grpc as ntf_grpc
from speako.notifier.v1 import resources_pb2 as ntf_res
from tests.conftest import bearer
from tests.factories import valid_config

State = res.PublishJob.State
TERMINAL = frozenset({State.STATE_PUBLISHED, State.STATE_FAILED, State.STATE_SUPERSEDED})
RANK = {State.STATE_SUBMITTED: 0, State.STATE_PROCESSING: 1}
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
)


def rank(state: int) -> int:
    """Order of job states: SUBMITTED < PROCESSING < any terminal state."""
    return RANK.get(state, 2)


def version_number(version: str) -> int:
    """7 for tenants/t/agents/a/versions/7; 0 for ''."""
    return int(version.rsplit("/", 1)[-1]) if version else 0


@dataclass
class Row:
    """One line of docs/RELIABILITY.md."""

    scenario: str
    fault: str
    publishes: int
    lost: int
    duplicated: int
    backwards: int
    recovery_s: float | None
    outcomes: dict[str, int]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """All three counts are zero."""
        return self.lost == 0 and self.duplicated == 0 and self.backwards == 0


# Rows of the session, written to docs/RELIABILITY.md at the end (conftest).
RESULTS: list[Row] = []


@dataclass
class Addrs:
    """Where the platform's public services listen."""

    config: str
    notifier: str
    activation: str
    database_url: str


async def connect_db(url: str, bound_s: float = 30.0) -> asyncpg.Connection:
    """Connect, waiting out a server that is restarting or full (max_connections is shared)."""
    end = time.monotonic() + bound_s
    while True:
        try:
            return await asyncpg.connect(url)
        except (OSError, asyncpg.TooManyConnectionsError, asyncpg.CannotConnectNowError):
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.5)


class Checker:
    """Publishes into one tenant, observes it, and counts violations of the guarantees."""

    def __init__(self, addrs: Addrs, token: str, tenant: str, *, agents: int = 6, settle_s: float = 75.0) -> None:
        self.addrs = addrs
        self.tenant = tenant
        self.md = bearer(token)
        self.settle_s = settle_s
        self.agent_count = agents
        self.agents: list[str] = []
        self._channels = [grpc.aio.insecure_channel(a) for a in (addrs.config, addrs.notifier, addrs.activation)]
        self.config = cfg_grpc.ConfigServiceStub(self._channels[0])
        self.notifier = ntf_grpc.NotifierServiceStub(self._channels[1])
        self.activation = act_grpc.ActivationServiceStub(self._channels[2])
        self.accepted: dict[str, str] = {}  # job name -> agent
        self.by_request: dict[str, str] = {}
        self.gave_up = 0
        self.duplicated = 0
        self.backwards = 0
        self.lost = 0
        self.notes: list[str] = []
        self.errors: Counter[str] = Counter()
        self.stream_updates: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.stream_reconnects = 0
        self.stream_gaps = 0
        self.live_seen: dict[str, list[int]] = defaultdict(list)
        self.t_clear: float | None = None
        self.final: dict[str, res.PublishJob] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._edits = 0
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self.initial_live: dict[str, int] = {}
        self.last_config: dict[str, res.AgentConfig] = {}
        self.initial_jobs: set[str] = set()

    # --- set-up -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the agents, publish each once (a live version to protect), start the observers."""

        async def make(i: int) -> None:
            agent = await self._call(
                lambda: self.config.CreateAgent(
                    cfg.CreateAgentRequest(
                        parent=f"tenants/{self.tenant}", agent_id=f"agent-{i}", agent=res.Agent(display_name=f"A{i}")
                    ),
                    metadata=self.md,
                    timeout=10,
                ),
                retry_on=frozenset({grpc.StatusCode.UNAVAILABLE}),
            )
            self.agents.append(agent.name)
            self._locks[agent.name] = asyncio.Lock()

        await asyncio.gather(*(make(i) for i in range(self.agent_count)))
        self.agents.sort()
        self._tasks.append(asyncio.create_task(self._watch()))
        await asyncio.sleep(0.3)
        first = await asyncio.gather(*(self.publish(a) for a in self.agents))
        self.initial_jobs = {j for j in first if j}
        await self.wait_terminal(list(self.initial_jobs), bound_s=60)
        for agent in self.agents:
            status = await self.activation.GetAgentStatus(
                act.GetAgentStatusRequest(name=agent), metadata=self.md, timeout=10
            )
            self.initial_live[agent] = version_number(status.live_version)
        self._tasks.append(asyncio.create_task(self._sample_live()))

    async def close(self) -> None:
        """Stop the observers and close the channels."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in self._channels))

    # --- driving ------------------------------------------------------------------------------

    async def _call(self, make, retry_on=RETRYABLE, bound_s: float = 90.0):  # type: ignore[no-untyped-def]
        end = time.monotonic() + bound_s
        delay = 0.05
        while True:
            try:
                return await make()
            except grpc.aio.AioRpcError as exc:
                self.errors[exc.code().name] += 1
                if exc.code() not in retry_on or time.monotonic() > end:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def publish(self, agent: str) -> str | None:
        """Edit the draft and publish it, retrying (same request_id) until accepted; the job name."""
        request_id = str(uuid.uuid4())
        async with self._locks[agent]:
            self._edits += 1
            config = valid_config(greeting=f"Hello from {{business_name}} #{self._edits} ({self.tenant})")
            self.last_config[agent] = config
            try:
                await self._call(
                    lambda: self.config.UpdateDraft(
                        cfg.UpdateDraftRequest(draft=res.Draft(name=f"{agent}/draft", config=config)),
                        metadata=self.md,
                        timeout=5,
                    )
                )
                names: set[str] = set()

                async def attempt() -> res.PublishJob:
                    job = await self.config.PublishDraft(
                        cfg.PublishDraftRequest(name=f"{agent}/draft", request_id=request_id),
                        metadata=self.md,
                        timeout=5,
                    )
                    names.add(job.name)
                    return job

                job = await self._call(attempt)
            except grpc.aio.AioRpcError as exc:
                self.gave_up += 1
                self.notes.append(f"publish not accepted: {exc.code().name} {exc.details()}")
                return None
        if len(names) > 1:
            self.duplicated += len(names) - 1
            self.notes.append(f"request_id {request_id} answered with {len(names)} different jobs")
        self.accepted[job.name] = agent
        self.by_request[request_id] = job.name
        return job.name

    async def burst(self, n: int, rate: float) -> list[str]:
        """``n`` publishes started at ``rate`` per second, round-robin over the agents."""
        tasks = []
        for i in range(n):
            tasks.append(asyncio.create_task(self.publish(self.agents[i % len(self.agents)])))
            await asyncio.sleep(1 / rate)
        return [j for j in await asyncio.gather(*tasks) if j]

    def fault_cleared(self) -> None:
        """The fault is over (service restarted, server back): recovery is timed from now."""
        self.t_clear = time.monotonic()

    # --- observing ----------------------------------------------------------------------------

    async def _watch(self) -> None:
        token = ""
        while not self._stopping:
            call = self.notifier.WatchPublishJobs(
                ntf.WatchPublishJobsRequest(parent=f"tenants/{self.tenant}", resume_token=token), metadata=self.md
            )
            try:
                async for update in call:
                    token = update.resume_token or token
                    if not update.heartbeat:
                        self._record(update.job)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.CANCELLED and self._stopping:
                    return
                if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                    self.stream_gaps += 1
                    token = ""
                self.stream_reconnects += 1
                await asyncio.sleep(0.2)

    def _record(self, job: res.PublishJob) -> None:
        seen = self.stream_updates[job.name]
        entry = (job.state, job.attempts)
        if seen:
            last_state = seen[-1][0]
            if rank(job.state) < rank(last_state):
                self.backwards += 1
                self.notes.append(f"{job.name}: watcher saw {State.Name(job.state)} after {State.Name(last_state)}")
            elif last_state in TERMINAL and job.state != last_state:
                self.duplicated += 1
                self.notes.append(
                    f"{job.name}: two terminal outcomes {State.Name(last_state)}, {State.Name(job.state)}"
                )
        seen.append(entry)

    async def _sample_live(self) -> None:
        while not self._stopping:
            for agent in self.agents:
                try:
                    status = await self.activation.GetAgentStatus(
                        act.GetAgentStatusRequest(name=agent), metadata=self.md, timeout=2
                    )
                except grpc.aio.AioRpcError:
                    continue
                n = version_number(status.live_version)
                seen = self.live_seen[agent]
                if seen and n < seen[-1]:
                    self.backwards += 1
                    self.notes.append(f"{agent}: live version went from {seen[-1]} to {n}")
                seen.append(n)
            await asyncio.sleep(0.25)

    # --- settling and verdict -----------------------------------------------------------------

    async def wait_terminal(self, jobs: list[str], bound_s: float) -> float | None:
        """Poll the notifier until every job is terminal; seconds taken, or None past the bound."""
        start = time.monotonic()
        pending = set(jobs)
        while pending and time.monotonic() - start < bound_s:
            for name in list(pending):
                try:
                    job = await self.notifier.GetPublishJob(
                        ntf.GetPublishJobRequest(name=name), metadata=self.md, timeout=2
                    )
                except grpc.aio.AioRpcError:
                    continue
                if job.state in TERMINAL:
                    self.final[name] = job
                    pending.discard(name)
            if pending:
                await asyncio.sleep(0.2)
        return None if pending else time.monotonic() - start

    async def settle(self) -> float | None:
        """Wait for every accepted job to be terminal; the recovery time since the fault cleared."""
        if self.t_clear is None:
            self.fault_cleared()
        took = await self.wait_terminal(list(self.accepted), self.settle_s)
        if took is None:
            return None
        assert self.t_clear is not None
        return max(0.0, time.monotonic() - self.t_clear)

    async def _publisher_states(self) -> dict[str, str]:
        con = await connect_db(self.addrs.database_url)
        try:
            rows = await con.fetch(
                "SELECT name, state FROM publisher.jobs WHERE name = ANY($1::text[])", list(self.accepted)
            )
        finally:
            await con.close()
        return {r["name"]: r["state"] for r in rows}

    async def _notifications(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        token = ""
        while True:
            page = await self._call(
                lambda token=token: self.notifier.ListNotifications(
                    ntf.ListNotificationsRequest(
                        parent=f"tenants/{self.tenant}",
                        category=ntf_res.Notification.CATEGORY_SYSTEM,
                        page_size=1000,
                        page_token=token,
                    ),
                    metadata=self.md,
                    timeout=10,
                )
            )
            counts.update(n.publish_job for n in page.notifications)
            token = page.next_page_token
            if not token:
                return counts

    async def verdict(self, scenario: str, fault: str, recovery_s: float | None) -> Row:
        """Count lost, duplicated and backwards jobs; record and return the row."""
        await asyncio.sleep(1.5)  # let the stream and the live sampler catch the last changes
        self._stopping = True
        lost = [n for n in self.accepted if n not in self.final]
        for name in lost:
            self.notes.append(f"{name}: not terminal within {self.settle_s:.0f}s")
        publisher = await self._publisher_states()
        for name, job in self.final.items():
            state = publisher.get(name)
            if state is None or state in ("SUBMITTED", "PROCESSING"):
                lost.append(name)
                self.notes.append(f"{name}: notifier says {State.Name(job.state)}, publisher {state}")
            elif f"STATE_{state}" != State.Name(job.state):
                self.duplicated += 1
                self.notes.append(f"{name}: notifier says {State.Name(job.state)}, publisher {state}")
        for name in self.final:
            if not any(s in TERMINAL for s, _ in self.stream_updates.get(name, [])):
                self.notes.append(f"{name}: terminal state never seen on the tenant stream")
                lost.append(name)
        # Exactly one System notification per failed job (the consumer may lag a moment).
        failed = {n for n, j in self.final.items() if j.state == State.STATE_FAILED}
        notes = Counter[str]()
        for _ in range(25):
            notes = await self._notifications()
            if all(notes[n] >= 1 for n in failed):
                break
            await asyncio.sleep(0.2)
        for name in failed:
            if notes[name] == 0:
                lost.append(name)
                self.notes.append(f"{name}: FAILED without a System notification")
            elif notes[name] > 1:
                self.duplicated += notes[name] - 1
                self.notes.append(f"{name}: {notes[name]} System notifications")
        for name, count in notes.items():
            if name in self.accepted and name not in failed:
                self.duplicated += count
                self.notes.append(f"{name}: notification for a job that did not fail")
        # Live never below the newest version a PUBLISHED job reported.
        for agent in self.agents:
            published = [
                version_number(j.version)
                for n, j in self.final.items()
                if self.accepted.get(n) == agent and j.state == State.STATE_PUBLISHED
            ]
            status = await self._call(
                lambda a=agent: self.activation.GetAgentStatus(
                    act.GetAgentStatusRequest(name=a), metadata=self.md, timeout=5
                )
            )
            live = version_number(status.live_version)
            if published and live < max(published):
                self.backwards += 1
                self.notes.append(f"{agent}: live v{live} below published v{max(published)}")
        self.lost = len(set(lost))
        for name in sorted(failed)[:4]:
            error = self.final[name].error
            reason = res.PublishError.Reason.Name(error.reason).removeprefix("REASON_")
            self.notes.append(f"{name.rsplit('/', 3)[-3]} job FAILED {reason}: {error.message[:160]}")
        outcomes = Counter(State.Name(j.state).removeprefix("STATE_") for j in self.final.values())
        if self.gave_up:
            self.notes.append(f"{self.gave_up} PublishDraft calls never accepted (not counted as lost)")
        if self.stream_reconnects:
            self.notes.append(f"tenant stream resumed {self.stream_reconnects} time(s), gaps {self.stream_gaps}")
        if self.errors:
            self.notes.append("client saw " + ", ".join(f"{k} x{v}" for k, v in sorted(self.errors.items())))
        row = Row(
            scenario,
            fault,
            len(self.accepted),
            self.lost,
            self.duplicated,
            self.backwards,
            recovery_s,
            dict(outcomes),
            self.notes[:12],
        )
        RESULTS.append(row)
        return row


def describe(row: Row) -> str:
    """A failure message listing what went wrong."""
    return (
        f"{row.scenario}: lost {row.lost}, duplicated {row.duplicated}, backwards {row.backwards}, "
        f"outcomes {row.outcomes}\n  " + "\n  ".join(row.notes)
    )


class StreamRecorder:
    """One dashboard's WatchPublishJobs stream of a tenant, resumed with its last token on any break."""

    def __init__(self, notifier: ntf_grpc.NotifierServiceStub, md: list[tuple[str, str]], parent: str) -> None:
        self._notifier = notifier
        self._md = md
        self._parent = parent
        self.first_token = ""
        self.token = ""
        self.updates: list[tuple[str, int, int]] = []
        self.resumes = 0
        self.expired = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._has_token = asyncio.Event()

    def start(self) -> None:
        """Open the stream in the background."""
        self._task = asyncio.create_task(self._run())

    async def wait_token(self, timeout: float = 10) -> None:
        """Wait for the first token (a heartbeat on an idle tenant)."""
        try:
            await asyncio.wait_for(self._has_token.wait(), timeout)
        except TimeoutError:
            raise AssertionError("no resume token within the bound (heartbeat)") from None

    async def _run(self) -> None:
        while not self._stopping:
            call = self._notifier.WatchPublishJobs(
                ntf.WatchPublishJobsRequest(parent=self._parent, resume_token=self.token), metadata=self._md
            )
            try:
                async for update in call:
                    if update.resume_token:
                        self.token = update.resume_token
                        self.first_token = self.first_token or update.resume_token
                        self._has_token.set()
                    if not update.heartbeat:
                        self.updates.append((update.job.name, update.job.state, update.job.attempts))
            except grpc.aio.AioRpcError as exc:
                if self._stopping:
                    return
                if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                    self.expired += 1
                    self.token = ""
                self.resumes += 1
                await asyncio.sleep(0.1)

    def terminal_jobs(self) -> set[str]:
        """Jobs seen in a terminal state."""
        return {name for name, state, _ in self.updates if state in TERMINAL}

    async def stop(self) -> None:
        """Close the stream."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def replay(
    notifier: ntf_grpc.NotifierServiceStub,
    md: list[tuple[str, str]],
    parent: str,
    token: str,
    jobs: set[str],
    timeout: float = 20,
) -> list[tuple[str, int, int]]:
    """Every update after ``token`` until each of ``jobs`` was seen terminal (the reference history)."""
    out: list[tuple[str, int, int]] = []
    done: set[str] = set()
    call = notifier.WatchPublishJobs(
        ntf.WatchPublishJobsRequest(parent=parent, resume_token=token), metadata=md, timeout=timeout
    )
    async for update in call:
        if update.heartbeat:
            continue
        out.append((update.job.name, update.job.state, update.job.attempts))
        if update.job.state in TERMINAL:
            done.add(update.job.name)
        if jobs <= done:
            call.cancel()
            break
    return out
