"""What a deploy (or version fetch) answer means for the job.

Codes are gRPC status code names ("UNAVAILABLE", ...) so this module stays free of grpc.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from services.publisher.domain.job import ErrorReason, JobError

# Guarantee 5: only these are worth another attempt; everything else fails fast.
RETRYABLE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})


class Verdict(enum.Enum):
    """The kind of outcome of one RPC attempt."""

    RETRY = "RETRY"
    FAIL = "FAIL"
    SUPERSEDE = "SUPERSEDE"


@dataclass(frozen=True)
class Outcome:
    """A classified RPC error: retry it, fail the job with error, or mark it superseded."""

    verdict: Verdict
    error: JobError | None = None
    message: str = ""


def is_retryable(code: str) -> bool:
    """True for the transient codes that are retried with backoff."""
    return code in RETRYABLE_CODES


def classify_deploy_error(code: str, message: str, field: str = "") -> Outcome:
    """Classify a DeployBundle error status."""
    if is_retryable(code):
        return Outcome(Verdict.RETRY, message=message)
    if code == "INVALID_ARGUMENT":
        # The runtime rejected the bundle: its message (and field, when given) is what the user fixes.
        return Outcome(
            Verdict.FAIL,
            JobError(ErrorReason.INVALID_CONFIG, message or "the runtime rejected the bundle", field),
        )
    if code == "FAILED_PRECONDITION":
        # The runtime's only precondition on a deploy: no newer version of the agent is live.
        return Outcome(Verdict.SUPERSEDE, message=message)
    return Outcome(
        Verdict.FAIL,
        JobError(ErrorReason.INTERNAL, f"deploy failed ({code}): {message}".rstrip(": ")),
    )


def classify_version_error(code: str, message: str, version: str) -> Outcome:
    """Classify a GetVersion error status (the version is immutable, so only transients retry)."""
    if is_retryable(code):
        return Outcome(Verdict.RETRY, message=message)
    if code == "NOT_FOUND":
        text = f"version {version} not found in the config service"
    else:
        text = f"reading version {version} failed ({code}): {message}".rstrip(": ")
    return Outcome(Verdict.FAIL, JobError(ErrorReason.INTERNAL, text))


def exhausted_error(attempts: int, last_code: str, last_message: str) -> JobError:
    """The error of a job whose deploy retries ran out before its deadline."""
    detail = f"{last_code}: {last_message}" if last_message else last_code
    plural = "s" if attempts != 1 else ""
    return JobError(
        ErrorReason.DEPLOY_UNAVAILABLE,
        f"runtime unavailable after {attempts} deploy attempt{plural} (last error {detail})",
    )


def timeout_error(deadline_iso: str, attempts: int, last_message: str = "") -> JobError:
    """The error of a job whose deadline passed before it finished."""
    text = f"publish deadline {deadline_iso} passed"
    if attempts:
        text += f" after {attempts} deploy attempt{'s' if attempts != 1 else ''}"
    else:
        text += " before any deploy attempt"
    if last_message:
        text += f" (last error: {last_message})"
    return JobError(ErrorReason.TIMEOUT, text)
