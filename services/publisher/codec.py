"""Protobuf <-> domain translation for publish jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2

from chassis.errors import InvalidArgument
from chassis.names import PublishJobName, VersionName
from services.publisher.domain import ErrorReason, Job, JobError, JobState, default_deadline
from speako.config.v1 import resources_pb2
from speako.events.v1 import events_pb2

_STATE_TO_PROTO: dict[JobState, Any] = {
    state: resources_pb2.PublishJob.State.Value(f"STATE_{state.value}") for state in JobState
}
_REASON_TO_PROTO: dict[ErrorReason, Any] = {
    reason: resources_pb2.PublishError.Reason.Value(f"REASON_{reason.value}") for reason in ErrorReason
}


class BadRequest(ValueError):
    """A PublishRequested the publisher cannot turn into a job; job_name is set when readable."""

    def __init__(self, message: str, job_name: str = "") -> None:
        super().__init__(message)
        self.job_name = job_name


def _ts(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def _dt(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def job_to_proto(job: Job) -> resources_pb2.PublishJob:
    """Translate a domain job into the PublishJob resource."""
    proto = resources_pb2.PublishJob(
        name=job.name,
        version=job.version,
        state=_STATE_TO_PROTO[job.state],
        attempts=job.attempts,
        create_time=_ts(job.create_time),
        update_time=_ts(job.update_time),
        deadline=_ts(job.deadline),
        changed_sections=list(job.changed_sections),
        requester=job.requester,
        trace_id=job.trace_id,
    )
    if job.error is not None:
        proto.error.CopyFrom(
            resources_pb2.PublishError(
                reason=_REASON_TO_PROTO[job.error.reason], message=job.error.message, field=job.error.field
            )
        )
    return proto


def state_changed(job: Job) -> events_pb2.JobStateChanged:
    """The JobStateChanged event announcing the job's current state."""
    return events_pb2.JobStateChanged(job=job_to_proto(job), sequence=job.sequence, event_time=_ts(job.update_time))


def readable_job_name(message: events_pb2.PublishRequested) -> str:
    """The job name of a request when it is a well-formed publish job name, else ''."""
    try:
        return str(PublishJobName.parse(message.job.name, field="job.name"))
    except InvalidArgument:
        return ""


def parse_request(message: events_pb2.PublishRequested, *, now: datetime, default_deadline_s: float) -> Job:
    """Validate a PublishRequested and build the SUBMITTED job it asks for."""
    job_name = readable_job_name(message)
    if not job_name:
        raise BadRequest(f"job.name {message.job.name!r} is not a publish job name")
    try:
        version = VersionName.parse(message.job.version, field="job.version")
    except InvalidArgument:
        raise BadRequest(f"job.version {message.job.version!r} is not a version name", job_name) from None
    agent = job_name.rsplit("/publishJobs/", 1)[0]
    if str(version.agent_name) != agent:
        raise BadRequest(f"version {version} does not belong to the job's agent {agent}", job_name)
    sha = message.content_sha256 or ""
    if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise BadRequest(f"content_sha256 {sha!r} is not a hex sha256", job_name)
    try:
        create_time = _dt(message.job.create_time) if message.job.HasField("create_time") else now
        deadline = (
            _dt(message.job.deadline)
            if message.job.HasField("deadline")
            else default_deadline(create_time, default_deadline_s)
        )
        update_time = _dt(message.job.update_time) if message.job.HasField("update_time") else create_time
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"job timestamps are out of range: {exc}", job_name) from None
    return Job(
        name=job_name,
        version=str(version),
        state=JobState.SUBMITTED,
        create_time=create_time,
        update_time=update_time,
        deadline=deadline,
        content_sha256=sha,
        changed_sections=tuple(message.job.changed_sections),
        requester=message.job.requester,
        trace_id=message.job.trace_id,
    )


def error_from_proto(error: resources_pb2.PublishError) -> JobError | None:
    """Translate a PublishError (None when unset)."""
    if error.reason == resources_pb2.PublishError.REASON_UNSPECIFIED:
        return None
    name = resources_pb2.PublishError.Reason.Name(error.reason).removeprefix("REASON_")
    return JobError(ErrorReason(name), error.message, error.field)


def unreadable_job(body: bytes, job_name: str, now: datetime, default_deadline_s: float) -> Job:
    """A SUBMITTED job for a request that cannot run, keeping whatever fields still parse."""
    try:
        job = events_pb2.PublishRequested.FromString(body).job
        create_time = _dt(job.create_time) if job.HasField("create_time") else now
        deadline = _dt(job.deadline) if job.HasField("deadline") else default_deadline(now, default_deadline_s)
    except Exception:
        job = resources_pb2.PublishJob()
        create_time, deadline = now, default_deadline(now, default_deadline_s)
    return Job(
        name=job_name,
        version=job.version if job.version.startswith(job_name.rsplit("/publishJobs/", 1)[0] + "/") else "",
        state=JobState.SUBMITTED,
        create_time=create_time,
        update_time=max(now, create_time),
        deadline=deadline,
        changed_sections=tuple(job.changed_sections),
        requester=job.requester,
        trace_id=job.trace_id,
    )
