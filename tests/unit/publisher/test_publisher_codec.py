"""Publish requests -> jobs, jobs -> PublishJob / JobStateChanged, and the publisher's options."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chassis.settings import SettingsError
from services.publisher import codec
from services.publisher.domain import ErrorReason, JobState
from services.publisher.options import PipelineOptions
from services.publisher.store import event_message_id
from speako.config.v1 import resources_pb2
from speako.events.v1 import events_pb2

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
AGENT = "tenants/acme/agents/front-desk"
JOB = f"{AGENT}/publishJobs/0b9d8a6e-3f43-4d3b-9b8e-7d2f1c0a5e44"
SHA = "a" * 64


def request(**job_fields: object) -> events_pb2.PublishRequested:
    message = events_pb2.PublishRequested(content_sha256=SHA)
    message.job.name = JOB
    message.job.version = f"{AGENT}/versions/4"
    message.job.state = resources_pb2.PublishJob.STATE_SUBMITTED
    message.job.create_time.FromDatetime(NOW)
    message.job.deadline.FromDatetime(NOW + timedelta(seconds=300))
    message.job.requester = "alice@acme"
    message.job.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    message.job.changed_sections.extend(["greetings", "voice"])
    for key, value in job_fields.items():
        setattr(message.job, key, value)
    return message


def test_publisher_parses_a_request_into_a_submitted_job() -> None:
    job = codec.parse_request(request(), now=NOW, default_deadline_s=300)
    assert (job.name, job.version, job.state, job.sequence) == (JOB, f"{AGENT}/versions/4", JobState.SUBMITTED, 1)
    assert (job.create_time, job.deadline) == (NOW, NOW + timedelta(seconds=300))
    assert (job.content_sha256, job.requester, job.changed_sections) == (SHA, "alice@acme", ("greetings", "voice"))


def test_publisher_request_without_deadline_gets_the_default() -> None:
    message = request()
    message.job.ClearField("deadline")
    job = codec.parse_request(message, now=NOW, default_deadline_s=60)
    assert job.deadline == NOW + timedelta(seconds=60)


@pytest.mark.parametrize(
    ("fields", "readable"),
    [
        ({"name": "jobs/1"}, False),
        ({"name": f"{AGENT}/publishJobs/not-a-uuid"}, False),
        ({"version": "versions/4"}, True),
        ({"version": "tenants/acme/agents/other/versions/4"}, True),
    ],
)
def test_publisher_unusable_requests_say_whether_the_job_is_known(fields: dict[str, str], readable: bool) -> None:
    with pytest.raises(codec.BadRequest) as err:
        codec.parse_request(request(**fields), now=NOW, default_deadline_s=300)
    assert err.value.job_name == (JOB if readable else "")


def test_publisher_rejects_a_malformed_content_hash() -> None:
    message = request()
    message.content_sha256 = "XYZ"
    with pytest.raises(codec.BadRequest, match="content_sha256"):
        codec.parse_request(message, now=NOW, default_deadline_s=300)


def test_publisher_job_round_trips_into_the_event() -> None:
    job = codec.parse_request(request(), now=NOW, default_deadline_s=300)
    failed = job.advance(JobState.PROCESSING, NOW).fail(ErrorReason.INVALID_CONFIG, "bad voice", NOW, "voice")
    event = codec.state_changed(failed)
    assert event.sequence == 3 and event.event_time.ToDatetime(tzinfo=UTC) == NOW
    proto = event.job
    assert proto.state == resources_pb2.PublishJob.STATE_FAILED
    assert (proto.error.reason, proto.error.message, proto.error.field) == (
        resources_pb2.PublishError.REASON_INVALID_CONFIG,
        "bad voice",
        "voice",
    )
    assert codec.error_from_proto(proto.error) == failed.error
    assert (proto.requester, proto.trace_id, list(proto.changed_sections)) == (
        "alice@acme",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        ["greetings", "voice"],
    )
    assert not codec.job_to_proto(job).HasField("error")


def test_publisher_event_ids_are_stable_per_job_and_sequence() -> None:
    job = codec.parse_request(request(), now=NOW, default_deadline_s=300)
    processing = job.advance(JobState.PROCESSING, NOW)
    assert event_message_id(processing) == event_message_id(processing)
    assert event_message_id(processing) != event_message_id(processing.advance(JobState.PUBLISHED, NOW))


def test_publisher_unreadable_job_keeps_what_parses() -> None:
    body = request(version="garbage").SerializeToString()
    job = codec.unreadable_job(body, JOB, NOW, 300)
    assert (job.name, job.version, job.requester, job.create_time) == (JOB, "", "alice@acme", NOW)
    junk = codec.unreadable_job(b"\xff\xff\xff", JOB, NOW, 300)
    assert (junk.name, junk.deadline) == (JOB, NOW + timedelta(seconds=300))


def test_publisher_options_from_env_and_their_limits() -> None:
    options = PipelineOptions.from_env({"SPEAKO_PUBLISHER_WORKERS": "3", "SPEAKO_PUBLISHER_LEASE_S": "20"})
    assert (options.workers, options.lease_s) == (3, 20.0)
    with pytest.raises(SettingsError, match="not a number"):
        PipelineOptions.from_env({"SPEAKO_PUBLISHER_WORKERS": "many"})
    with pytest.raises(SettingsError, match="shorter than the job lease"):
        PipelineOptions(lease_s=5, deploy_attempt_timeout_s=10)
    with pytest.raises(SettingsError, match="at least 1"):
        PipelineOptions(workers=0)
