"""The publish job and its state machine.

SUBMITTED -> PROCESSING -> PUBLISHED | FAILED | SUPERSEDED, and SUBMITTED -> FAILED for a job
that can never start (deadline already passed, unreadable request). Terminal states are final.
Every transition bumps the job's sequence, which the state-change events carry so a reader can
drop a late event that would move a job backwards.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import datetime


class JobState(enum.Enum):
    """State of a publish job (suffixes of speako.config.v1.PublishJob.State)."""

    SUBMITTED = "SUBMITTED"
    PROCESSING = "PROCESSING"
    PUBLISHED = "PUBLISHED"
    FAILED = "FAILED"
    SUPERSEDED = "SUPERSEDED"

    @property
    def terminal(self) -> bool:
        """True for states a job never leaves."""
        return self in TERMINAL_STATES

    @property
    def routing_key(self) -> str:
        """The speako.events routing key announcing this state."""
        return f"job.{self.value.lower()}"


TERMINAL_STATES = frozenset({JobState.PUBLISHED, JobState.FAILED, JobState.SUPERSEDED})
ACTIVE_STATES = frozenset({JobState.SUBMITTED, JobState.PROCESSING})

LEGAL_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.SUBMITTED: frozenset({JobState.PROCESSING, JobState.FAILED}),
    JobState.PROCESSING: frozenset({JobState.PUBLISHED, JobState.FAILED, JobState.SUPERSEDED}),
    JobState.PUBLISHED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.SUPERSEDED: frozenset(),
}


class ErrorReason(enum.Enum):
    """Why a job failed (suffixes of speako.config.v1.PublishError.Reason)."""

    INVALID_CONFIG = "INVALID_CONFIG"
    DEPLOY_UNAVAILABLE = "DEPLOY_UNAVAILABLE"
    TIMEOUT = "TIMEOUT"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True)
class JobError:
    """The error of a FAILED job."""

    reason: ErrorReason
    message: str
    field: str = ""


class IllegalTransition(Exception):
    """A transition the state machine does not allow."""

    def __init__(self, current: JobState, target: JobState) -> None:
        super().__init__(f"illegal job transition {current.value} -> {target.value}")
        self.current = current
        self.target = target


def check_transition(current: JobState, target: JobState) -> None:
    """Raise IllegalTransition unless current -> target is allowed."""
    if target not in LEGAL_TRANSITIONS[current]:
        raise IllegalTransition(current, target)


# The SUBMITTED event (sequence 1) is config's; the publisher's transitions start at 2.
SUBMITTED_SEQUENCE = 1


@dataclass(frozen=True)
class Job:
    """One publish of one version, as the publisher tracks it."""

    name: str
    version: str
    state: JobState
    create_time: datetime
    update_time: datetime
    deadline: datetime
    content_sha256: str = ""
    changed_sections: tuple[str, ...] = ()
    requester: str = ""
    trace_id: str = ""
    attempts: int = 0
    error: JobError | None = None
    sequence: int = SUBMITTED_SEQUENCE

    @property
    def agent(self) -> str:
        """The agent resource name (tenants/t/agents/a)."""
        return self.name.rsplit("/publishJobs/", 1)[0]

    @property
    def terminal(self) -> bool:
        """True once the job reached a final state."""
        return self.state.terminal

    def overdue(self, now: datetime) -> bool:
        """True when the job's deadline has passed."""
        return now >= self.deadline

    def advance(self, target: JobState, now: datetime, error: JobError | None = None) -> Job:
        """Return the job after a legal transition to target, with the next sequence number."""
        check_transition(self.state, target)
        if (target is JobState.FAILED) != (error is not None):
            raise ValueError("a FAILED job needs an error and only a FAILED job has one")
        return dataclasses.replace(
            self,
            state=target,
            error=error,
            update_time=max(now, self.update_time),
            sequence=self.sequence + 1,
        )

    def fail(self, reason: ErrorReason, message: str, now: datetime, field: str = "") -> Job:
        """Return the job moved to FAILED with the given error."""
        return self.advance(JobState.FAILED, now, JobError(reason, message, field))

    def with_attempt(self, now: datetime) -> Job:
        """Return the job with one more deploy attempt counted (no state change, no event)."""
        if self.state is not JobState.PROCESSING:
            raise IllegalTransition(self.state, JobState.PROCESSING)
        return dataclasses.replace(self, attempts=self.attempts + 1, update_time=max(now, self.update_time))
