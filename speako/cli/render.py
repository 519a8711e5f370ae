"""Text rendering for the terminal: tables, times, diffs, checklists and job progress (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import timestamp_pb2

from speako.config.v1 import resources_pb2

State = resources_pb2.PublishJob.State
TERMINAL_STATES = frozenset({State.STATE_PUBLISHED, State.STATE_FAILED, State.STATE_SUPERSEDED})

# What the dashboard calls each job state.
STAGE_LABELS: dict[int, str] = {
    State.STATE_UNSPECIFIED: "Unknown",
    State.STATE_SUBMITTED: "Submitting",
    State.STATE_PROCESSING: "Processing",
    State.STATE_PUBLISHED: "Published",
    State.STATE_FAILED: "Failed",
    State.STATE_SUPERSEDED: "Superseded",
}


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], max_width: int = 60) -> str:
    """A plain aligned table; cells are cut at ``max_width`` (the last column never is)."""
    text_rows = [[_cell(v) for v in row] for row in rows]
    cut = [
        [c if i == len(row) - 1 or len(c) <= max_width else c[: max_width - 1] + "…" for i, c in enumerate(row)]
        for row in text_rows
    ]
    widths = [len(h) for h in headers]
    for row in cut:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in cut:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value).replace("\n", "⏎")


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    """``key: value`` lines with the values aligned."""
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{(k + ':').ljust(width + 1)} {_cell(v)}".rstrip() for k, v in pairs)


def ts_datetime(ts: timestamp_pb2.Timestamp) -> datetime | None:
    """A timezone-aware datetime, or None for an unset timestamp."""
    if not ts.seconds and not ts.nanos:
        return None
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, UTC)


def fmt_time(ts: timestamp_pb2.Timestamp) -> str:
    """``2026-11-22 01:51:47Z`` (UTC), or an empty string when unset."""
    when = ts_datetime(ts)
    return when.strftime("%Y-%m-%d %H:%M:%SZ") if when else ""


def fmt_elapsed(seconds: float) -> str:
    """``0.4s``, ``12.3s``, ``2m05s``, ``1h02m``."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """``now``, ``30m``/``2h``/``7d`` ago, or an ISO 8601 time (UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    raw = text.strip()
    if raw.lower() == "now":
        return now
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if raw and raw[-1] in units and raw[:-1].replace(".", "", 1).isdigit():
        return now - timedelta(seconds=float(raw[:-1]) * units[raw[-1]])
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration like 30m, 2h, 7d nor a time like 2026-11-22T09:00") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def state_name(state: int) -> str:
    """``PUBLISHED`` for STATE_PUBLISHED."""
    return State.Name(state).removeprefix("STATE_") if state in State.values() else str(state)


def reason_name(reason: int) -> str:
    """``DEPLOY_UNAVAILABLE`` for REASON_DEPLOY_UNAVAILABLE."""
    enum = resources_pb2.PublishError.Reason
    return enum.Name(reason).removeprefix("REASON_") if reason in enum.values() else str(reason)


def job_error(job: resources_pb2.PublishJob) -> str:
    """``DEPLOY_UNAVAILABLE: message (field x)`` or an empty string."""
    if not job.HasField("error") or not (job.error.reason or job.error.message):
        return ""
    text = reason_name(job.error.reason)
    if job.error.message:
        text += f": {job.error.message}"
    if job.error.field:
        text += f" (field {job.error.field})"
    return text


# --- publish job progress -------------------------------------------------------------------------


def pipeline(state: int) -> str:
    """``Submitting ✓ → Processing … → Published`` with the current stage marked."""
    order = [State.STATE_SUBMITTED, State.STATE_PROCESSING]
    final = state if state in TERMINAL_STATES else State.STATE_PUBLISHED
    stages = [*order, final]
    current = stages.index(state) if state in stages else 0
    parts = []
    for i, stage in enumerate(stages):
        label = STAGE_LABELS[stage]
        if i < current or (i == current and state in TERMINAL_STATES):
            mark = " ✓" if stage != State.STATE_FAILED and stage != State.STATE_SUPERSEDED else " ✗"
        elif i == current:
            mark = " …"
        else:
            mark = ""
        parts.append(label + mark)
    return " → ".join(parts)


def job_elapsed(job: resources_pb2.PublishJob, now: datetime) -> float:
    """Seconds since the job was created (until its last update once terminal)."""
    start = ts_datetime(job.create_time)
    if start is None:
        return 0.0
    end = ts_datetime(job.update_time) if job.state in TERMINAL_STATES else now
    return ((end or now) - start).total_seconds()


def progress_event(job: resources_pb2.PublishJob, elapsed: float) -> str:
    """One log line per change of a job: elapsed, stage, attempts and any error."""
    stage = STAGE_LABELS.get(job.state, state_name(job.state))
    detail = []
    if job.attempts:
        detail.append(f"attempt {job.attempts}" if job.state not in TERMINAL_STATES else f"attempts {job.attempts}")
    if job.state == State.STATE_PUBLISHED:
        detail.append(f"version {job.version.rsplit('/', 1)[-1]} is live")
    error = job_error(job)
    if error and job.state != State.STATE_FAILED:
        # A failure's reason and message go in the closing line (outcome_line), once.
        detail.append(error)
    return f"{fmt_elapsed(elapsed):>7}  {stage:<11} {'  '.join(detail)}".rstrip()


def progress_status(job: resources_pb2.PublishJob, elapsed: float, spinner: str) -> str:
    """The live line a terminal rewrites in place while following a job."""
    attempts = f"  attempt {job.attempts}" if job.attempts else ""
    return f"{spinner} {pipeline(job.state)}{attempts}  {fmt_elapsed(elapsed)}"


def outcome_line(job: resources_pb2.PublishJob, elapsed: float) -> str:
    """The closing sentence once a job is terminal."""
    version = job.version.rsplit("/", 1)[-1]
    if job.state == State.STATE_PUBLISHED:
        return f"Published version {version} in {fmt_elapsed(elapsed)} ({job.attempts} deploy attempt(s))."
    if job.state == State.STATE_SUPERSEDED:
        return f"Superseded: a newer version went live first; version {version} was not deployed."
    return f"Failed after {fmt_elapsed(elapsed)}: {job_error(job) or 'no reason given'}"


# --- checklist and diff -------------------------------------------------------------------------------


def severity_name(severity: int) -> str:
    """``ERROR`` / ``WARNING``."""
    enum = resources_pb2.Violation.Severity
    return enum.Name(severity).removeprefix("SEVERITY_") if severity in enum.values() else str(severity)


def checklist(violations: Sequence[resources_pb2.Violation]) -> tuple[str, str, bool]:
    """(table, summary, has_errors) of a validation report; errors first."""
    errors = [v for v in violations if v.severity == resources_pb2.Violation.SEVERITY_ERROR]
    others = [v for v in violations if v.severity != resources_pb2.Violation.SEVERITY_ERROR]
    rows = [
        ("✗ " if v.severity == resources_pb2.Violation.SEVERITY_ERROR else "! ") + severity_name(v.severity)
        for v in [*errors, *others]
    ]
    body = table(
        ["SEVERITY", "FIELD", "CODE", "MESSAGE"],
        [(sev, v.field or "(config)", v.code, v.message) for sev, v in zip(rows, [*errors, *others], strict=True)],
    )
    n_err, n_warn = len(errors), len(others)
    if n_err:
        summary = f"{n_err} error(s), {n_warn} warning(s): publishing is blocked until the errors are fixed."
    elif n_warn:
        summary = f"No errors, {n_warn} warning(s): ready to publish."
    else:
        summary = "All checks pass: ready to publish."
    return (body if violations else ""), summary, bool(n_err)


def _pretty_json(text: str) -> list[str]:
    """A JSON value as display lines: scalars inline, structures indented."""
    try:
        value = json.loads(text)
    except ValueError:
        return [text]
    if isinstance(value, dict | list):
        compact = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        if len(compact) <= 80:
            return [compact]
        return json.dumps(value, indent=2, ensure_ascii=False).splitlines()
    return [json.dumps(value, ensure_ascii=False)]


def diff_lines(changes: Sequence[resources_pb2.FieldChange]) -> list[tuple[str, str]]:
    """(style, text) lines of a readable diff; style is one of header/add/remove/change/plain."""
    out: list[tuple[str, str]] = []
    for change in changes:
        if not change.base_value:
            out.append(("add", f"+ {change.field}  (added)"))
        elif not change.target_value:
            out.append(("remove", f"- {change.field}  (removed)"))
        else:
            out.append(("change", f"~ {change.field}"))
        for line in _pretty_json(change.base_value) if change.base_value else []:
            out.append(("remove", f"    - {line}"))
        for line in _pretty_json(change.target_value) if change.target_value else []:
            out.append(("add", f"    + {line}"))
    return out
