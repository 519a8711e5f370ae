"""The job pipeline: workers that claim job rows under a lease and drive them to a final state.

The database row, not the broker delivery, carries the work: the consumer acks a request once
its row is committed, so no delivery is held across a long retry loop. Any replica's dispatcher
claims unfinished rows whose lease is free or expired (a crashed replica's jobs are resumed
that way), a heartbeat keeps the lease while a job is worked, and a sweeper fails jobs whose
deadline passed while nobody held them.

Safety: an attempt is counted (and the lease renewed for longer than the attempt's RPC deadline)
in the database before every DeployBundle, under a compare-and-set on the lease; so a replica
that lost its job never deploys again, and every RPC deadline ends by the job deadline, so no
deploy is started after a job could have been reported TIMEOUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry.trace import SpanKind
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from chassis import telemetry
from chassis.metrics import ServiceMetrics
from services.publisher.clients import RemoteError, Runtime, VersionSource
from services.publisher.domain import (
    ErrorReason,
    Job,
    JobError,
    JobState,
    Outcome,
    PackagingError,
    Verdict,
    classify_deploy_error,
    classify_version_error,
    exhausted_error,
    fits_before,
    is_retryable,
    iso_utc,
    package,
    step_timeout_s,
    timeout_error,
)
from services.publisher.metrics import PipelineMetrics
from services.publisher.options import PipelineOptions
from services.publisher.store import Claim, JobStore
from speako.activation.v1 import resources_pb2 as activation_pb2
from speako.config.v1 import resources_pb2 as config_pb2

log = logging.getLogger("speako.publisher.pipeline")

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


class LeaseLost(Exception):
    """Another replica (or the sweeper) took the job; this worker must drop it untouched."""


class _DeadlinePassed(Exception):
    """No time is left for the next step."""


@dataclass
class _Run:
    """A job being worked, updated as attempts are counted."""

    job: Job
    last_error: str = ""
    # Retrying stopped because no further attempt fits before the deadline: the job times out.
    out_of_time: bool = False


class _StopWhen:
    """tenacity stop: attempts used up, or the next sleep leaves no room before the deadline."""

    def __init__(
        self, run: _Run, attempts: Callable[[RetryCallState], int], options: PipelineOptions, clock: Clock
    ) -> None:
        self._run = run
        self._attempts = attempts
        self._options = options
        self._clock = clock

    def __call__(self, state: RetryCallState) -> bool:
        if self._attempts(state) >= self._options.max_attempts:
            return True
        if fits_before(self._run.job.deadline, self._clock(), state.upcoming_sleep, self._options.min_attempt_s):
            return False
        self._run.out_of_time = True
        return True


def _attributes(job: Job) -> dict[str, str]:
    return {"speako.publish_job": job.name, "speako.version": job.version}


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, RemoteError) and is_retryable(exc.code)


class Pipeline:
    """Claims, drives and sweeps publish jobs for one process."""

    def __init__(
        self,
        store: JobStore,
        versions: VersionSource,
        runtime: Runtime,
        options: PipelineOptions,
        *,
        service_name: str = "speako-publisher",
        metrics: PipelineMetrics | None = None,
        owner: str | None = None,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.store = store
        self.versions = versions
        self.runtime = runtime
        self.options = options
        self.service_name = service_name
        self.metrics = metrics or PipelineMetrics(ServiceMetrics(service_name))
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._clock = clock
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        # Worker slots promised to the consumer for jobs it claims as it accepts them.
        self._reserved = 0
        self._none_reserved = asyncio.Event()
        self._none_reserved.set()
        # Whether unleased jobs may be waiting (a request accepted without a slot): only then does
        # a finished job trigger a claim query; otherwise the poll finds expired leases.
        self._backlog = True

    # --- dispatch --------------------------------------------------------------------------------

    def wake(self) -> None:
        """Look for claimable jobs now (a request was just accepted)."""
        self._backlog = True
        self._wake.set()

    def reserve(self) -> bool:
        """Hold a free worker slot for a job the caller is about to insert leased to ``owner``."""
        if self._stopping or len(self._in_flight) + self._reserved >= self.options.workers:
            return False
        self._reserved += 1
        self._none_reserved.clear()
        return True

    def unreserve(self) -> None:
        """Give back a slot from ``reserve`` that no job took."""
        self._release_slot()

    def adopt(self, claim: Claim) -> None:
        """Work a job the caller committed leased to this owner, in a slot from ``reserve``."""
        self._release_slot()
        self._start(claim)

    def _release_slot(self) -> None:
        self._reserved -= 1
        if not self._reserved:
            self._none_reserved.set()

    @property
    def in_flight(self) -> int:
        """Jobs this process is working on."""
        return len(self._in_flight)

    async def run(self) -> None:
        """Dispatcher: keep up to ``workers`` jobs in hand until drained."""
        backoff = 0.1
        while not self._stopping:
            self._wake.clear()
            try:
                await self._fill()
                backoff = 0.1
            except Exception as exc:
                log.warning("claiming jobs failed, retrying in %.1fs: %r", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.options.poll_interval_s)
            except TimeoutError:
                pass

    async def _fill(self) -> None:
        while not self._stopping:
            free = self.options.workers - len(self._in_flight) - self._reserved
            if free <= 0:
                return
            # Cleared before the query, so a request accepted meanwhile sets it again.
            self._backlog = False
            claims = await self._claim(free)
            if self._stopping:
                return  # drain releases every lease of this owner, these included
            for claim in claims:
                self._start(claim)
            if len(claims) < free:
                return
            self._backlog = True

    def _start(self, claim: Claim) -> None:
        name = claim.job.name
        task = asyncio.create_task(self._drive(claim), name=f"job {name}")
        self._in_flight[name] = task
        task.add_done_callback(functools.partial(self._done, name))

    async def _claim(self, limit: int) -> list[Claim]:
        # Claims and their PROCESSING transitions share one non-durable commit: losing it in a
        # database crash loses leases (the jobs are claimed again) and at worst re-sends a
        # PROCESSING event under the same message_id; every deploy attempt is preceded by a
        # durable commit of its own.
        async with self.store.transaction(durable=False) as con:
            claims = await self.store.claim(con, self.owner, self.options.lease_s, limit)
            now = self._clock()
            out: list[Claim] = []
            for claim in claims:
                if claim.job.state is not JobState.SUBMITTED or claim.job.overdue(now):
                    out.append(claim)
                    continue
                processing = claim.job.advance(JobState.PROCESSING, now)
                with telemetry.span_from_headers(
                    self.service_name,
                    "claim publish job",
                    claim.trace_context,
                    SpanKind.INTERNAL,
                    _attributes(claim.job),
                ):
                    if not await self.store.transition(con, claim.job, processing, owner=self.owner):
                        raise RuntimeError(f"claimed job {claim.job.name} changed under its row lock")
                out.append(Claim(processing, claim.trace_context))
            return out

    def _done(self, name: str, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(name, None)
        if self._backlog:
            self._wake.set()

    async def drain(self, grace_s: float) -> None:
        """Stop claiming, let in-flight jobs finish within grace_s, hand the rest back."""
        self._stopping = True
        self._wake.set()
        # An intake still holding a reserved slot may yet commit a job leased to us: wait for it
        # (within the grace), so that job is drained or handed back like the others.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none_reserved.wait(), grace_s)
        pending: set[asyncio.Task[None]] = set(self._in_flight.values())
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            async with self.store.transaction() as con:
                released = await self.store.release(con, self.owner)
        except Exception:
            log.exception("releasing leases at shutdown failed; they expire in %.0fs", self.options.lease_s)
            return
        if released:
            log.info("handed back %d unfinished job(s) for another replica", released)

    # --- one job ---------------------------------------------------------------------------------

    async def _drive(self, claim: Claim) -> None:
        job = claim.job
        with telemetry.span_from_headers(
            self.service_name, "publish job", claim.trace_context, SpanKind.INTERNAL, _attributes(job)
        ):
            work = asyncio.create_task(self._work(job))
            lost = asyncio.Event()
            heartbeat = asyncio.create_task(self._heartbeat(job.name, work, lost))
            try:
                await work
            except asyncio.CancelledError:
                if not lost.is_set():
                    raise
                log.warning("lease of %s was lost; another replica works it now", job.name)
            except LeaseLost:
                log.warning("job %s changed under this worker; dropped it", job.name)
            except Exception:
                # Infrastructure trouble (database, bug): the lease expires and a worker retries
                # the job; the deadline bounds how long that can go on.
                log.exception("working job %s failed; it is retried after its lease expires", job.name)
            finally:
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)

    async def _heartbeat(self, name: str, work: asyncio.Task[None], lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.options.heartbeat_s)
            try:
                async with self.store.transaction(durable=False) as con:
                    kept = await self.store.renew(con, self.owner, name, self.options.lease_s)
            except Exception as exc:
                log.warning("lease renewal of %s failed: %r", name, exc)
                continue
            if not kept:
                lost.set()
                work.cancel()
                return

    async def _work(self, job: Job) -> None:
        run = _Run(job)
        if job.state is JobState.SUBMITTED and not job.overdue(self._clock()):
            await self._transition(run, job.advance(JobState.PROCESSING, self._clock()))
        final = await self._execute(run)
        await self._transition(run, final)
        self.metrics.finished(final)
        log.info(
            "job %s %s after %d attempt(s)%s",
            final.name,
            final.state.value,
            final.attempts,
            f": {final.error.reason.value} {final.error.message}" if final.error else "",
        )

    async def _transition(self, run: _Run, after: Job) -> None:
        async with self.store.statement() as con:
            if not await self.store.transition(con, run.job, after, owner=self.owner):
                raise LeaseLost(run.job.name)
        run.job = after

    async def _execute(self, run: _Run) -> Job:
        """Decide the job's final state (doing the work); the caller commits it."""
        if run.job.overdue(self._clock()):
            return self._timed_out(run)
        try:
            version = await self._fetch_version(run)
            bundle = package(version, run.job.agent, run.job.content_sha256)
        except _DeadlinePassed:
            return self._timed_out(run)
        except PackagingError as exc:
            return run.job.fail(ErrorReason.INTERNAL, str(exc), self._clock())
        except RemoteError as exc:
            return self._after_remote_error(run, exc, classify_version_error(exc.code, exc.message, run.job.version))

        try:
            await self._deploy(run, bundle)
        except _DeadlinePassed:
            return self._timed_out(run)
        except RemoteError as exc:
            return self._after_remote_error(run, exc, classify_deploy_error(exc.code, exc.message, exc.field))
        return run.job.advance(JobState.PUBLISHED, self._clock())

    def _after_remote_error(self, run: _Run, exc: RemoteError, outcome: Outcome) -> Job:
        now = self._clock()
        if outcome.verdict is Verdict.RETRY:
            # The deadline ended the retries (it passed, or no attempt fits before it): TIMEOUT.
            # The attempt budget ran out first: the dependency is down, DEPLOY_UNAVAILABLE.
            if run.job.overdue(now) or run.out_of_time:
                return self._timed_out(run)
            if run.job.attempts == 0:
                error = JobError(
                    ErrorReason.DEPLOY_UNAVAILABLE,
                    f"config service unavailable reading {run.job.version} ({exc.code}: {exc.message})",
                )
            else:
                error = exhausted_error(run.job.attempts, exc.code, exc.message)
            return run.job.fail(error.reason, error.message, now, error.field)
        if outcome.verdict is Verdict.SUPERSEDE:
            log.info("job %s superseded: %s", run.job.name, outcome.message)
            return run.job.advance(JobState.SUPERSEDED, now)
        assert outcome.error is not None
        return run.job.fail(outcome.error.reason, outcome.error.message, now, outcome.error.field)

    def _timed_out(self, run: _Run) -> Job:
        error = timeout_error(iso_utc(run.job.deadline), run.job.attempts, run.last_error)
        return run.job.fail(error.reason, error.message, self._clock())

    def _retrying(self, run: _Run, attempts: Callable[[RetryCallState], int]) -> AsyncRetrying:
        return AsyncRetrying(
            wait=wait_random_exponential(multiplier=self.options.backoff_multiplier_s, max=self.options.backoff_max_s),
            stop=_StopWhen(run, attempts, self.options, self._clock),
            retry=retry_if_exception(_transient),
            reraise=True,
            sleep=self._sleep,
        )

    def _step_timeout(self, run: _Run, limit_s: float) -> float:
        timeout = step_timeout_s(run.job.deadline, self._clock(), limit_s, self.options.min_attempt_s)
        if timeout is None:
            raise _DeadlinePassed
        return timeout

    async def _fetch_version(self, run: _Run) -> config_pb2.Version:
        async for attempt in self._retrying(run, lambda state: state.attempt_number):
            with attempt:
                timeout = self._step_timeout(run, self.options.version_timeout_s)
                try:
                    return await self.versions.get_version(run.job.version, timeout)
                except RemoteError as exc:
                    run.last_error = f"GetVersion {exc.code}: {exc.message}"
                    raise
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _deploy(self, run: _Run, bundle: activation_pb2.Bundle) -> None:
        tracer = telemetry.tracer(self.service_name)
        async for attempt in self._retrying(run, lambda _state: run.job.attempts):
            with attempt:
                timeout = self._step_timeout(run, self.options.deploy_attempt_timeout_s)
                # Counted and the lease renewed (committed, durably) before the call: a worker that
                # lost the job stops here.
                async with self.store.statement() as con:
                    counted = await self.store.count_attempt(
                        con, self.owner, run.job, self._clock(), self.options.lease_s
                    )
                if counted is None:
                    raise LeaseLost(run.job.name)
                run.job = counted
                with tracer.start_as_current_span("deploy attempt", attributes={"speako.attempt": counted.attempts}):
                    try:
                        await self.runtime.deploy(bundle, timeout)
                    except RemoteError as exc:
                        self.metrics.deploy_attempt(exc.code)
                        run.last_error = f"DeployBundle {exc.code}: {exc.message}"
                        raise
                    self.metrics.deploy_attempt("OK")

    # --- sweeper ---------------------------------------------------------------------------------

    async def sweep(self) -> None:
        """Background loop: time out overdue jobs nobody holds; forget old delivery ids."""
        rounds = 0
        while not self._stopping:
            try:
                await self.sweep_once()
                if rounds % 3600 == 0:
                    async with self.store.transaction() as con:
                        await self.store.prune_processed(con, self.options.processed_retention_s)
            except Exception as exc:
                log.warning("sweeping jobs failed: %r", exc)
            rounds += 1
            await asyncio.sleep(self.options.poll_interval_s)

    async def sweep_once(self) -> int:
        """Fail every overdue unleased job with TIMEOUT; returns how many."""
        async with self.store.transaction() as con:
            jobs = await self.store.lock_overdue(con, self._clock())
            failed: list[Job] = []
            for job in jobs:
                error = timeout_error(iso_utc(job.deadline), job.attempts)
                failed.append(job.fail(error.reason, error.message, self._clock()))
                await self.store.transition(con, job, failed[-1])
        for job in failed:
            self.metrics.finished(job)
            log.info("job %s FAILED: TIMEOUT (deadline passed while no worker held it)", job.name)
        return len(jobs)
