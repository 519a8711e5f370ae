"""Terminal rendering: tables, times, checklist, diff, job progress and server error lines."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from speako.cli.errors import report_from_rpc_error, report_from_status
from speako.cli.render import (
    checklist,
    diff_lines,
    fmt_elapsed,
    fmt_time,
    job_error,
    outcome_line,
    parse_when,
    pipeline,
    progress_event,
    table,
)
from speako.config.v1 import resources_pb2 as res

State = res.PublishJob.State


def _ts(seconds: float) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=int(seconds), nanos=int((seconds % 1) * 1e9))


def test_table_aligns_columns_and_cuts_long_cells():
    text = table(["A", "LONG HEADER"], [("x", "1"), ("yyyy", "2")])
    lines = text.splitlines()
    assert lines[0] == "A     LONG HEADER"
    assert lines[2] == "yyyy  2"
    cut = table(["A", "B"], [("z" * 100, "end")], max_width=10).splitlines()[1]
    assert cut.startswith("z" * 9 + "…")


def test_times_and_durations():
    assert fmt_time(_ts(1_700_000_000)) == "2023-11-14 22:13:20Z"
    assert fmt_time(timestamp_pb2.Timestamp()) == ""
    assert fmt_elapsed(0.42) == "0.4s"
    assert fmt_elapsed(125) == "2m05s"
    assert fmt_elapsed(3720) == "1h02m"


def test_parse_when_durations_and_times():
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert parse_when("2h", now) == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert parse_when("1d", now) == datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert parse_when("2026-11-22T09:30Z") == datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
    assert parse_when("2026-11-22T09:30") == datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="duration"):
        parse_when("yesterday")


def test_checklist_lists_errors_first_and_summarises():
    violations = [
        res.Violation(field="knowledge", code="KNOWLEDGE_EMPTY", message="empty", severity=2),
        res.Violation(field="greetings.opening_greeting", code="GREETING_EMPTY", message="no greeting", severity=1),
    ]
    body, summary, has_errors = checklist(violations)
    lines = body.splitlines()
    assert "GREETING_EMPTY" in lines[1] and "ERROR" in lines[1]
    assert "KNOWLEDGE_EMPTY" in lines[2] and "WARNING" in lines[2]
    assert has_errors and summary.startswith("1 error(s), 1 warning(s)")
    body, summary, has_errors = checklist(violations[:1])
    assert not has_errors and "ready to publish" in summary
    assert checklist([]) == ("", "All checks pass: ready to publish.", False)


def test_diff_shows_changed_added_and_removed_fields():
    lines = diff_lines(
        [
            res.FieldChange(field="greetings.opening_greeting", base_value='"Hi"', target_value='"Hello"'),
            res.FieldChange(field="pronunciations.Speako", base_value="", target_value='"speak-oh"'),
            res.FieldChange(field="tools", base_value='[{"id":"t","url":"' + "x" * 80 + '"}]', target_value=""),
            res.FieldChange(field="voice.additional_languages", base_value='["es-MX"]', target_value='["es-MX","fr"]'),
        ]
    )
    text = [t for _, t in lines]
    assert text[:3] == ["~ greetings.opening_greeting", '    - "Hi"', '    + "Hello"']
    assert text[3:5] == ["+ pronunciations.Speako  (added)", '    + "speak-oh"']
    assert text[5] == "- tools  (removed)"
    assert '    -     "id": "t",' in text  # long values are indented
    assert text[-2:] == ['    - ["es-MX"]', '    + ["es-MX", "fr"]']  # short ones stay on one line
    assert {style for style, _ in lines} == {"change", "add", "remove"}


def _job(state: int, attempts: int = 0, **kw: object) -> res.PublishJob:
    return res.PublishJob(
        name="tenants/acme/agents/fd/publishJobs/0d6f2d1e-8a84-4c34-9a53-0f3b1c2d4e5f",
        version="tenants/acme/agents/fd/versions/3",
        state=state,
        attempts=attempts,
        create_time=_ts(1_700_000_000),
        update_time=_ts(1_700_000_002.5),
        **kw,
    )


def test_pipeline_marks_the_current_stage():
    assert pipeline(State.STATE_SUBMITTED) == "Submitting … → Processing → Published"
    assert pipeline(State.STATE_PROCESSING) == "Submitting ✓ → Processing … → Published"
    assert pipeline(State.STATE_PUBLISHED) == "Submitting ✓ → Processing ✓ → Published ✓"
    assert pipeline(State.STATE_FAILED) == "Submitting ✓ → Processing ✓ → Failed ✗"


def test_progress_lines_show_stage_attempts_and_failure():
    assert progress_event(_job(State.STATE_PROCESSING, 2), 1.2) == "   1.2s  Processing  attempt 2"
    published = progress_event(_job(State.STATE_PUBLISHED, 1), 2.5)
    assert published == "   2.5s  Published   attempts 1  version 3 is live"
    failed = _job(
        State.STATE_FAILED,
        3,
        error=res.PublishError(reason=res.PublishError.REASON_DEPLOY_UNAVAILABLE, message="runtime down", field=""),
    )
    assert job_error(failed) == "DEPLOY_UNAVAILABLE: runtime down"
    assert progress_event(failed, 9) == "   9.0s  Failed      attempts 3"
    assert outcome_line(failed, 9.0) == "Failed after 9.0s: DEPLOY_UNAVAILABLE: runtime down"
    assert outcome_line(_job(State.STATE_PUBLISHED, 1), 2.5).startswith("Published version 3 in 2.5s")
    assert "Superseded" in outcome_line(_job(State.STATE_SUPERSEDED), 1)


def _packed(*details: object) -> list[any_pb2.Any]:
    out = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)  # type: ignore[arg-type]
        out.append(item)
    return out


def test_error_line_includes_field_and_precondition_violations():
    status = status_pb2.Status(
        code=code_pb2.FAILED_PRECONDITION,
        message="cannot activate",
        details=_packed(
            error_details_pb2.ErrorInfo(reason="NOT_READY", domain="speako.dev"),
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type="PHONE_NUMBER", subject="tenants/a/agents/b", description="assign one"
                    )
                ]
            ),
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field="name", description="bad", reason="X")
                ]
            ),
        ),
    )
    report = report_from_status("FAILED_PRECONDITION", status.message, status)
    assert report.reason == "NOT_READY"
    line = report.line()
    assert "\n" not in line
    assert (
        line
        == "FAILED_PRECONDITION: cannot activate — name: bad [X] — unmet: PHONE_NUMBER tenants/a/agents/b: assign one"
    )


def test_error_line_does_not_repeat_what_the_message_says():
    status = status_pb2.Status(
        code=code_pb2.INVALID_ARGUMENT,
        message="greetings.opening_greeting: unbalanced brace",
        details=_packed(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field="greetings.opening_greeting", description="unbalanced brace"
                    )
                ]
            )
        ),
    )
    assert report_from_status("INVALID_ARGUMENT", status.message, status).line() == (
        "INVALID_ARGUMENT: greetings.opening_greeting: unbalanced brace"
    )


class _FakeCall(grpc.RpcError, grpc.Call):
    """What a failed sync call looks like: code, details and trailing metadata."""

    def __init__(self, status: status_pb2.Status) -> None:
        self._status = rpc_status.to_status(status)

    def code(self):
        return self._status.code

    def details(self):
        return self._status.details

    def trailing_metadata(self):
        return self._status.trailing_metadata

    def initial_metadata(self):
        return ()

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False


def test_report_from_a_failed_call_reads_the_rich_status():
    status = status_pb2.Status(
        code=code_pb2.NOT_FOUND,
        message="agent tenants/a/agents/b does not exist",
        details=_packed(error_details_pb2.ResourceInfo(resource_name="tenants/a/agents/b")),
    )
    report = report_from_rpc_error(_FakeCall(status))
    assert report.code == "NOT_FOUND"
    assert report.resource == "tenants/a/agents/b"
    assert report.line() == "NOT_FOUND: agent tenants/a/agents/b does not exist"


def test_stream_rows_stay_in_columns():
    from speako.cli.publishing import stream_row

    header = stream_row(["TIME", "AGENT", "VERSION", "STATE", "ATTEMPTS", "JOB", "ERROR"])
    row = stream_row(["2026-11-22 02:18:40Z", "acme/fd", "v6", "PUBLISHED", "1", "x" * 36, ""])
    assert header.index("AGENT") == row.index("acme/fd")
    assert header.index("JOB") == row.index("x" * 36)
