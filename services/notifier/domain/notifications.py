"""Notification Center rules: the System notification of a failed job, maintenance notice checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from speako.config.v1 import resources_pb2

_REASON_TEXT = {
    resources_pb2.PublishError.REASON_INVALID_CONFIG: "the runtime rejected the configuration",
    resources_pb2.PublishError.REASON_DEPLOY_UNAVAILABLE: ("the runtime stayed unavailable until retries ran out"),
    resources_pb2.PublishError.REASON_TIMEOUT: "it did not finish before its deadline",
    resources_pb2.PublishError.REASON_INTERNAL: "of an internal error",
}
MAX_TITLE = 200
MAX_MESSAGE = 4000
MAX_NOTICE_LENGTH = timedelta(days=31)


@dataclass(frozen=True)
class SystemNotice:
    """Title and message of the System notification raised by a failed publish."""

    title: str
    message: str


def failed_job_notification(job: resources_pb2.PublishJob) -> SystemNotice:
    """Describe a FAILED job for the tenant's Notification Center."""
    agent = job.name.rsplit("/publishJobs/", 1)[0]
    agent_id = agent.rsplit("/", 1)[-1]
    version_no = job.version.rsplit("/", 1)[-1] if job.version else "?"
    why = _REASON_TEXT.get(job.error.reason, "of an unknown error")
    message = f"Publishing version {version_no} of agent {agent_id} failed because {why}."
    if job.error.message:
        message += f" {job.error.message}"
    if job.error.field:
        message += f" (field {job.error.field})"
    message += " The previous live version keeps serving calls and the draft is unchanged."
    return SystemNotice(title=f"Publish of {agent_id} version {version_no} failed", message=message[:MAX_MESSAGE])


def notice_violations(title: str, message: str, start: datetime | None, end: datetime | None) -> list[tuple[str, str]]:
    """Field violations of a maintenance notice (empty when valid)."""
    out: list[tuple[str, str]] = []
    if not title.strip():
        out.append(("notice.title", "must not be empty"))
    elif len(title) > MAX_TITLE:
        out.append(("notice.title", f"must be at most {MAX_TITLE} characters"))
    if len(message) > MAX_MESSAGE:
        out.append(("notice.message", f"must be at most {MAX_MESSAGE} characters"))
    for field, text in (("notice.title", title), ("notice.message", message)):
        # Stored as PostgreSQL text, which cannot hold NUL.
        if "\x00" in text:
            out.append((field, "must not contain NUL characters"))
    if start is None:
        out.append(("notice.start_time", "is required"))
    if end is None:
        out.append(("notice.end_time", "is required"))
    if start is not None and end is not None:
        if end <= start:
            out.append(("notice.end_time", "must be after start_time"))
        elif end - start > MAX_NOTICE_LENGTH:
            out.append(("notice.end_time", f"a notice may last at most {MAX_NOTICE_LENGTH.days} days"))
    return out


def is_current(start: datetime, end: datetime, now: datetime) -> bool:
    """A maintenance notice shows while start_time <= now < end_time."""
    return start <= now < end
