"""Read-model rules for publish jobs: which state change is accepted, what is terminal."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from speako.config.v1 import resources_pb2

State = resources_pb2.PublishJob.State

TERMINAL_STATES: frozenset[int] = frozenset({State.STATE_PUBLISHED, State.STATE_FAILED, State.STATE_SUPERSEDED})
KNOWN_STATES: frozenset[int] = frozenset({State.STATE_SUBMITTED, State.STATE_PROCESSING, *TERMINAL_STATES})

_ID = r"[a-z][a-z0-9-]{0,62}"
_JOB_NAME = re.compile(rf"^(tenants/{_ID})/agents/{_ID}/publishJobs/[0-9a-f-]{{36}}$")


class InvalidEvent(ValueError):
    """A job event that can never be applied (the consumer dead-letters it)."""


@dataclass(frozen=True)
class JobKey:
    """Where a job belongs: its name, its agent and its tenant (full resource names)."""

    name: str
    agent: str
    tenant: str

    @classmethod
    def of(cls, job_name: str) -> JobKey:
        """Split a publish job name; InvalidEvent when it is not one."""
        m = _JOB_NAME.match(job_name)
        if not m:
            raise InvalidEvent(f"{job_name!r} is not a publish job name")
        return cls(name=job_name, agent=job_name.rsplit("/publishJobs/", 1)[0], tenant=m.group(1))


@dataclass(frozen=True)
class Revision:
    """The part of a stored job that decides whether an event may replace it."""

    sequence: int
    state: int


def is_terminal(state: int) -> bool:
    """True for PUBLISHED, FAILED and SUPERSEDED: nothing follows them."""
    return state in TERMINAL_STATES


def check_event(job: resources_pb2.PublishJob, sequence: int) -> JobKey:
    """Validate a JobStateChanged payload and return where the job belongs."""
    if sequence < 1:
        raise InvalidEvent(f"sequence {sequence} of {job.name!r} is not positive")
    if job.state not in KNOWN_STATES:
        raise InvalidEvent(f"job {job.name!r} has unknown state {job.state}")
    return JobKey.of(job.name)


def accepts(current: Revision | None, incoming: Revision) -> bool:
    """Whether an event may replace the stored job.

    Only a strictly higher sequence wins, so duplicates and late (out-of-order) events never move a
    job backwards; a terminal state is final even if a buggy producer sent something after it.
    """
    if current is None:
        return True
    if incoming.sequence <= current.sequence:
        return False
    return not is_terminal(current.state)


def accepted_in_order(current: Revision | None, incoming: Sequence[Revision]) -> list[bool]:
    """Which of one job's events, applied in delivery order, are accepted.

    Each event is judged against the job as the accepted events before it left it, exactly as if
    they had arrived one transaction at a time.
    """
    out = []
    for revision in incoming:
        ok = accepts(current, revision)
        if ok:
            current = revision
        out.append(ok)
    return out
