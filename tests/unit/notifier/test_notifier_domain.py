"""Read-model merge rules, tokens and notification texts of the notifier (pure)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notifier.domain.jobs import (
    InvalidEvent,
    JobKey,
    Revision,
    accepts,
    check_event,
    is_terminal,
)
from services.notifier.domain.notifications import failed_job_notification, is_current, notice_violations
from services.notifier.domain.tokens import PageCursor, ResumeToken, TokenError, filter_fingerprint
from speako.config.v1 import resources_pb2

S = resources_pb2.PublishJob.State
JOB = "tenants/acme/agents/front-desk/publishJobs/0b6f6c4e-8a43-4c1b-9d0e-1f2a3b4c5d6e"


def test_job_key_splits_tenant_and_agent():
    key = JobKey.of(JOB)
    assert key.tenant == "tenants/acme"
    assert key.agent == "tenants/acme/agents/front-desk"
    assert key.name == JOB


@pytest.mark.parametrize("name", ["", "tenants/acme", "tenants/acme/agents/a/publishJobs/x", "foo/" + JOB])
def test_job_key_rejects_other_names(name):
    with pytest.raises(InvalidEvent):
        JobKey.of(name)


def test_check_event_rejects_unknown_state_and_bad_sequence():
    with pytest.raises(InvalidEvent):
        check_event(resources_pb2.PublishJob(name=JOB, state=S.STATE_UNSPECIFIED), 1)
    with pytest.raises(InvalidEvent):
        check_event(resources_pb2.PublishJob(name=JOB, state=S.STATE_SUBMITTED), 0)
    assert check_event(resources_pb2.PublishJob(name=JOB, state=S.STATE_SUBMITTED), 1).tenant == "tenants/acme"


def test_first_event_of_a_job_is_accepted_whatever_its_sequence():
    assert accepts(None, Revision(1, S.STATE_SUBMITTED))
    assert accepts(None, Revision(4, S.STATE_PUBLISHED))


def test_only_a_higher_sequence_replaces_the_stored_state():
    current = Revision(2, S.STATE_PROCESSING)
    assert accepts(current, Revision(3, S.STATE_PUBLISHED))
    assert not accepts(current, Revision(2, S.STATE_PROCESSING))  # duplicate
    assert not accepts(current, Revision(1, S.STATE_SUBMITTED))  # late


def test_terminal_state_is_final():
    assert is_terminal(S.STATE_FAILED) and is_terminal(S.STATE_SUPERSEDED) and is_terminal(S.STATE_PUBLISHED)
    assert not is_terminal(S.STATE_PROCESSING)
    assert not accepts(Revision(3, S.STATE_FAILED), Revision(4, S.STATE_PROCESSING))


@given(st.permutations([(1, S.STATE_SUBMITTED), (2, S.STATE_PROCESSING), (3, S.STATE_PROCESSING), (4, S.STATE_FAILED)]))
def test_any_delivery_order_ends_at_the_highest_sequence_and_never_goes_back(order):
    current = None
    seen = []
    for seq, state in order:
        if accepts(current, Revision(seq, state)):
            current = Revision(seq, state)
            seen.append(seq)
    assert current == Revision(4, S.STATE_FAILED)
    assert seen == sorted(seen)


def test_resume_token_round_trip_and_opacity():
    token = ResumeToken("0123456789abcdef", 42).encode()
    assert "42" not in token
    assert ResumeToken.decode(token) == ResumeToken("0123456789abcdef", 42)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "!!!",
        "a" * 600,
        base64.urlsafe_b64encode(b"nf1:xyz:1").decode(),
        base64.urlsafe_b64encode(b"nf1:0123456789abcdef:-1").decode(),
        base64.urlsafe_b64encode(b"nf1:0123456789abcdef:01").decode(),
        base64.urlsafe_b64encode(b"nf1:0123456789abcdef:99999999999999999999").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_malformed_resume_tokens_are_rejected(raw):
    with pytest.raises(TokenError):
        ResumeToken.decode(raw.rstrip("="))


def test_page_cursor_is_bound_to_its_filters():
    fp = filter_fingerprint("jobs", "tenants/acme", [4])
    token = PageCursor(1_700_000_000_000_000, JOB, fp).encode()
    assert PageCursor.decode(token, fp).key == JOB
    with pytest.raises(TokenError):
        PageCursor.decode(token, filter_fingerprint("jobs", "tenants/acme", [3]))
    with pytest.raises(TokenError):
        PageCursor.decode("not-a-token", fp)
    with pytest.raises(TokenError):
        PageCursor.decode(base64.urlsafe_b64encode(b'{"t": "x"}').decode().rstrip("="), fp)


def test_failed_job_notification_names_agent_version_and_reason():
    job = resources_pb2.PublishJob(
        name=JOB,
        version="tenants/acme/agents/front-desk/versions/7",
        state=S.STATE_FAILED,
        error=resources_pb2.PublishError(
            reason=resources_pb2.PublishError.REASON_INVALID_CONFIG, message="bad greeting", field="greetings"
        ),
    )
    n = failed_job_notification(job)
    assert n.title == "Publish of front-desk version 7 failed"
    assert "rejected the configuration" in n.message and "bad greeting" in n.message and "greetings" in n.message


def test_notice_validation_and_window():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert notice_violations("Upgrade", "", start, start + timedelta(hours=1)) == []
    fields = {f for f, _ in notice_violations(" ", "", None, None)}
    assert fields == {"notice.title", "notice.start_time", "notice.end_time"}
    assert [f for f, _ in notice_violations("x", "", start, start)] == ["notice.end_time"]
    assert [f for f, _ in notice_violations("x", "", start, start + timedelta(days=40))] == ["notice.end_time"]
    assert is_current(start, start + timedelta(hours=1), start)
    assert not is_current(start, start + timedelta(hours=1), start + timedelta(hours=1))
    assert not is_current(start, start + timedelta(hours=1), start - timedelta(seconds=1))
