"""The publisher's domain: job state machine, deploy outcomes, packaging, deadlines."""

from services.publisher.domain.bundle import PackagingError, package
from services.publisher.domain.deadlines import default_deadline, fits_before, iso_utc, remaining_s, step_timeout_s
from services.publisher.domain.job import (
    ACTIVE_STATES,
    LEGAL_TRANSITIONS,
    SUBMITTED_SEQUENCE,
    TERMINAL_STATES,
    ErrorReason,
    IllegalTransition,
    Job,
    JobError,
    JobState,
    check_transition,
)
from services.publisher.domain.outcomes import (
    RETRYABLE_CODES,
    Outcome,
    Verdict,
    classify_deploy_error,
    classify_version_error,
    exhausted_error,
    is_retryable,
    timeout_error,
)

__all__ = [
    "ACTIVE_STATES",
    "LEGAL_TRANSITIONS",
    "RETRYABLE_CODES",
    "SUBMITTED_SEQUENCE",
    "TERMINAL_STATES",
    "ErrorReason",
    "IllegalTransition",
    "Job",
    "JobError",
    "JobState",
    "Outcome",
    "PackagingError",
    "Verdict",
    "check_transition",
    "classify_deploy_error",
    "classify_version_error",
    "default_deadline",
    "exhausted_error",
    "fits_before",
    "is_retryable",
    "iso_utc",
    "package",
    "remaining_s",
    "step_timeout_s",
    "timeout_error",
]
