"""The publisher's pure domain: state machine, outcome classification, packaging, deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.config.domain.canonical import content_sha256
from services.publisher.domain import (
    LEGAL_TRANSITIONS,
    RETRYABLE_CODES,
    ErrorReason,
    IllegalTransition,
    Job,
    JobError,
    JobState,
    PackagingError,
    Verdict,
    check_transition,
    classify_deploy_error,
    classify_version_error,
    exhausted_error,
    fits_before,
    package,
    remaining_s,
    step_timeout_s,
    timeout_error,
)
from speako.config.v1 import resources_pb2

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
AGENT = "tenants/acme/agents/front-desk"


def make_job(**overrides: object) -> Job:
    fields: dict[str, object] = {
        "name": f"{AGENT}/publishJobs/6f1c2a4e-8d3b-4c1a-9e2f-1a2b3c4d5e6f",
        "version": f"{AGENT}/versions/3",
        "state": JobState.SUBMITTED,
        "create_time": T0,
        "update_time": T0,
        "deadline": T0 + timedelta(seconds=300),
    }
    fields.update(overrides)
    return Job(**fields)  # type: ignore[arg-type]


# --- state machine -------------------------------------------------------------------------------


def test_publisher_happy_path_sequence_grows_from_two() -> None:
    job = make_job()
    processing = job.advance(JobState.PROCESSING, T0 + timedelta(seconds=1))
    published = processing.advance(JobState.PUBLISHED, T0 + timedelta(seconds=2))
    assert (processing.sequence, published.sequence) == (2, 3)
    assert published.state is JobState.PUBLISHED and published.terminal
    assert published.update_time == T0 + timedelta(seconds=2)
    assert job.state is JobState.SUBMITTED  # jobs are values; advance never mutates


@pytest.mark.parametrize("terminal", [JobState.PUBLISHED, JobState.FAILED, JobState.SUPERSEDED])
@pytest.mark.parametrize("target", list(JobState))
def test_publisher_terminal_states_are_final(terminal: JobState, target: JobState) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(terminal, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (JobState.SUBMITTED, JobState.PUBLISHED),
        (JobState.SUBMITTED, JobState.SUPERSEDED),
        (JobState.SUBMITTED, JobState.SUBMITTED),
        (JobState.PROCESSING, JobState.SUBMITTED),
        (JobState.PROCESSING, JobState.PROCESSING),
    ],
)
def test_publisher_backward_or_skipping_transitions_are_illegal(current: JobState, target: JobState) -> None:
    with pytest.raises(IllegalTransition):
        make_job(state=current).advance(target, T0, None)


def test_publisher_submitted_job_can_fail_directly_with_sequence_two() -> None:
    failed = make_job().fail(ErrorReason.TIMEOUT, "late", T0)
    assert failed.state is JobState.FAILED and failed.sequence == 2
    assert failed.error == JobError(ErrorReason.TIMEOUT, "late")


def test_publisher_failed_needs_error_and_others_refuse_one() -> None:
    processing = make_job(state=JobState.PROCESSING, sequence=2)
    with pytest.raises(ValueError):
        processing.advance(JobState.FAILED, T0)
    with pytest.raises(ValueError):
        processing.advance(JobState.PUBLISHED, T0, JobError(ErrorReason.INTERNAL, "x"))


def test_publisher_attempts_count_only_while_processing() -> None:
    processing = make_job(state=JobState.PROCESSING, sequence=2)
    twice = processing.with_attempt(T0).with_attempt(T0)
    assert twice.attempts == 2 and twice.sequence == 2 and twice.state is JobState.PROCESSING
    with pytest.raises(IllegalTransition):
        make_job().with_attempt(T0)


def test_publisher_update_time_never_goes_backwards() -> None:
    job = make_job(update_time=T0 + timedelta(seconds=10))
    assert job.advance(JobState.PROCESSING, T0).update_time == T0 + timedelta(seconds=10)


@given(st.lists(st.sampled_from(list(JobState)), max_size=8))
def test_publisher_any_walk_keeps_sequence_growing_and_terminal_final(targets: list[JobState]) -> None:
    job = make_job()
    for target in targets:
        before = job
        try:
            job = job.advance(target, T0, JobError(ErrorReason.INTERNAL, "x") if target is JobState.FAILED else None)
        except IllegalTransition:
            assert target not in LEGAL_TRANSITIONS[before.state]
            continue
        assert not before.terminal
        assert job.sequence == before.sequence + 1


def test_publisher_routing_keys_and_agent() -> None:
    assert [s.routing_key for s in JobState] == [
        "job.submitted",
        "job.processing",
        "job.published",
        "job.failed",
        "job.superseded",
    ]
    assert make_job().agent == AGENT
    assert make_job().overdue(T0 + timedelta(seconds=300))
    assert not make_job().overdue(T0 + timedelta(seconds=299))


# --- outcome classification ----------------------------------------------------------------------


@pytest.mark.parametrize("code", ["UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"])
def test_publisher_transient_codes_retry(code: str) -> None:
    assert classify_deploy_error(code, "busy").verdict is Verdict.RETRY
    assert classify_version_error(code, "busy", "v").verdict is Verdict.RETRY
    assert code in RETRYABLE_CODES


def test_publisher_invalid_argument_is_invalid_config_with_runtime_message() -> None:
    outcome = classify_deploy_error("INVALID_ARGUMENT", "voice 'x' unknown", "voice.voice_id")
    assert outcome.verdict is Verdict.FAIL
    assert outcome.error == JobError(ErrorReason.INVALID_CONFIG, "voice 'x' unknown", "voice.voice_id")


def test_publisher_failed_precondition_supersedes() -> None:
    outcome = classify_deploy_error("FAILED_PRECONDITION", "version 5 is live")
    assert outcome.verdict is Verdict.SUPERSEDE and outcome.error is None
    assert outcome.message == "version 5 is live"


@pytest.mark.parametrize(
    "code", ["PERMISSION_DENIED", "UNAUTHENTICATED", "INTERNAL", "UNKNOWN", "UNIMPLEMENTED", "NOT_FOUND"]
)
def test_publisher_other_codes_fail_fast_with_message(code: str) -> None:
    outcome = classify_deploy_error(code, "nope")
    assert outcome.verdict is Verdict.FAIL
    assert outcome.error is not None and outcome.error.reason is ErrorReason.INTERNAL
    assert code in outcome.error.message and "nope" in outcome.error.message


def test_publisher_missing_version_fails_internal() -> None:
    outcome = classify_version_error("NOT_FOUND", "no such version", f"{AGENT}/versions/9")
    assert outcome.verdict is Verdict.FAIL
    assert outcome.error is not None and outcome.error.reason is ErrorReason.INTERNAL
    assert f"{AGENT}/versions/9" in outcome.error.message


def test_publisher_exhausted_and_timeout_errors() -> None:
    exhausted = exhausted_error(4, "UNAVAILABLE", "connection refused")
    assert exhausted.reason is ErrorReason.DEPLOY_UNAVAILABLE
    assert "4 deploy attempts" in exhausted.message and "connection refused" in exhausted.message
    timeout = timeout_error("2026-01-01T12:05:00Z", 0)
    assert timeout.reason is ErrorReason.TIMEOUT and "before any deploy attempt" in timeout.message


# --- packaging -----------------------------------------------------------------------------------


def make_version(number: int = 3) -> resources_pb2.Version:
    config = resources_pb2.AgentConfig(
        greetings=resources_pb2.Greetings(opening_greeting="Hello from {business_name}"),
        pronunciations={"Acme": "ak-mee"},
    )
    return resources_pb2.Version(
        name=f"{AGENT}/versions/{number}", number=number, config=config, content_sha256=content_sha256(config)
    )


def test_publisher_bundle_hash_equals_version_hash() -> None:
    version = make_version()
    bundle = package(version, AGENT, version.content_sha256)
    assert bundle.content_sha256 == version.content_sha256 == content_sha256(bundle.config)
    assert (bundle.agent, bundle.version) == (AGENT, version.name)


def test_publisher_bundle_refuses_tampered_content() -> None:
    version = make_version()
    version.config.greetings.opening_greeting = "changed after hashing"
    with pytest.raises(PackagingError, match="hashes to"):
        package(version, AGENT)


def test_publisher_bundle_refuses_hash_other_than_requested() -> None:
    version = make_version()
    with pytest.raises(PackagingError, match="publish request expects"):
        package(version, AGENT, "0" * 64)


def test_publisher_bundle_refuses_version_of_other_agent() -> None:
    with pytest.raises(PackagingError, match="does not belong"):
        package(make_version(), "tenants/acme/agents/other")


# --- deadlines -----------------------------------------------------------------------------------


def test_publisher_step_timeout_is_capped_by_job_deadline() -> None:
    deadline = T0 + timedelta(seconds=3)
    assert remaining_s(deadline, T0) == 3
    assert step_timeout_s(deadline, T0, 10) == 3
    assert step_timeout_s(deadline, T0, 1.5) == 1.5
    assert step_timeout_s(deadline, deadline - timedelta(milliseconds=10), 10) is None
    assert step_timeout_s(deadline, deadline + timedelta(seconds=1), 10) is None


def test_publisher_sleep_must_leave_room_for_an_attempt() -> None:
    deadline = T0 + timedelta(seconds=3)
    assert fits_before(deadline, T0, 2.5)
    assert not fits_before(deadline, T0, 2.99)
