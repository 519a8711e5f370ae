"""Deadline arithmetic: how much of a job's time budget is left for the next step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def remaining_s(deadline: datetime, now: datetime) -> float:
    """Seconds left until the deadline (negative once it passed)."""
    return (deadline - now).total_seconds()


def step_timeout_s(deadline: datetime, now: datetime, step_limit_s: float, min_s: float = 0.05) -> float | None:
    """The RPC deadline for the next step: its own limit, capped by the job deadline.

    None when less than min_s is left: the step must not start, since nothing it did could be
    reported before the job times out.
    """
    left = remaining_s(deadline, now)
    if left < min_s:
        return None
    return min(step_limit_s, left)


def fits_before(deadline: datetime, now: datetime, sleep_s: float, min_s: float = 0.05) -> bool:
    """True when sleeping sleep_s still leaves at least min_s for another attempt."""
    return remaining_s(deadline, now) - sleep_s >= min_s


def default_deadline(create_time: datetime, deadline_s: float) -> datetime:
    """The deadline of a job whose request carried none."""
    return create_time + timedelta(seconds=deadline_s)


def iso_utc(value: datetime) -> str:
    """RFC 3339 UTC text with milliseconds, as error messages show deadlines."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
