"""``speako notifications`` (the Notification Center) and ``speako notices`` (maintenance, sre)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from google.protobuf import timestamp_pb2

from speako.cli import refs
from speako.cli.common import (
    client_of,
    emit,
    expand,
    more_hint,
    new_request_id,
    output_option,
    request_id_option,
    with_examples,
)
from speako.cli.errors import UsageProblem
from speako.cli.render import fmt_time, job_error, key_values, parse_when, table
from speako.config.v1 import resources_pb2 as res
from speako.notifier.v1 import notifier_service_pb2 as ntf
from speako.notifier.v1 import resources_pb2 as ntf_res

Category = ntf_res.Notification.Category


def category_name(value: int) -> str:
    """``SYSTEM`` for CATEGORY_SYSTEM."""
    return Category.Name(value).removeprefix("CATEGORY_") if value in Category.values() else str(value)


@click.group()
def notifications() -> None:
    """The tenant's Notification Center: failed publishes (system) and maintenance.

    \b
    Example:
      speako notifications list acme --category system
    """


@notifications.command("list")
@click.argument("tenant", required=False)
@click.option("--category", type=click.Choice(["system", "maintenance"]), help="Only this category.")
@click.option("--unread", is_flag=True, help="Only unread notifications.")
@click.option("--limit", default=50, show_default=True)
@output_option()
@with_examples("speako notifications list acme --category system --unread")
@click.pass_context
def list_notifications(
    ctx: click.Context, tenant: str | None, category: str | None, unread: bool, limit: int, output: str
) -> None:
    """List notifications, newest first."""
    client = client_of(ctx)
    request = ntf.ListNotificationsRequest(parent=expand(refs.tenant_name, tenant, client.tenant), unread_only=unread)
    if category:
        request.category = Category.Value(f"CATEGORY_{category.upper()}")  # type: ignore[assignment]
    items, next_token = client.pages("notifier", "ListNotifications", request, "notifications", limit)

    def row(n: ntf_res.Notification) -> tuple[object, ...]:
        detail = job_error_text(n) if n.category == Category.CATEGORY_SYSTEM else _window(n)
        return (
            n.name.rsplit("/", 1)[-1],
            category_name(n.category),
            "" if n.read else "●",
            fmt_time(n.create_time),
            n.title,
            detail or n.message,
        )

    emit(
        output,
        {"notifications": items, "next_page_token": next_token},
        lambda: (
            table(["ID", "CATEGORY", "UNREAD", "CREATED", "TITLE", "DETAIL"], [row(n) for n in items])
            + ("" if items else "\n(no notifications)")
        ),
    )
    more_hint(output, next_token, limit)


def job_error_text(n: ntf_res.Notification) -> str:
    """``acme/front-desk v3: DEPLOY_UNAVAILABLE: ...`` for a failed-publish notification."""
    if not n.HasField("error"):
        return ""
    where = f"{refs.short(n.agent)} v{refs.version_number(n.version)}: " if n.agent else ""
    return where + job_error(res.PublishJob(error=n.error))


def _window(n: ntf_res.Notification) -> str:
    if not n.start_time.seconds:
        return ""
    return f"{fmt_time(n.start_time)} → {fmt_time(n.end_time)}: {n.message}"


@notifications.command("read")
@click.argument("notification", nargs=-1, required=True)
@output_option()
@with_examples("speako notifications read acme/2b9c4e1a")
@click.pass_context
def mark_read(ctx: click.Context, notification: tuple[str, ...], output: str) -> None:
    """Mark notifications read (TENANT/ID, ID with the token's tenant, or full names)."""
    client = client_of(ctx)
    done = []
    for ref in notification:
        name = expand(refs.notification_name, ref, client.tenant)
        done.append(client.call("notifier", "MarkNotificationRead", ntf.MarkNotificationReadRequest(name=name)))
    emit(output, {"notifications": done}, lambda: "\n".join(f"Marked read: {n.name}" for n in done))


@click.group()
def notices() -> None:
    """Maintenance notices shown to every tenant (sre).

    \b
    Example:
      speako notices create --title "Upgrade" --message "Calls may drop." --start now --end +1h
    """


def _ts(text: str) -> timestamp_pb2.Timestamp:
    try:
        when = parse_when(text) if not text.startswith("+") else _ahead(text[1:])
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts


def _ahead(text: str) -> datetime:
    """``+2h``: that long from now."""
    now = datetime.now(UTC)
    return now + (now - parse_when(text, now))


@notices.command("create")
@click.option("--title", required=True)
@click.option("--message", required=True)
@click.option("--start", required=True, help="now, a time (2026-11-23T02:00Z) or +DURATION from now (+1h).")
@click.option("--end", required=True, help="A time or +DURATION from now; after --start.")
@request_id_option
@output_option()
@with_examples(
    """
speako notices create --title "Telephony upgrade" --message "Calls may drop briefly." \\
    --start 2026-11-23T02:00Z --end 2026-11-23T03:00Z
"""
)
@click.pass_context
def create_notice(
    ctx: click.Context, title: str, message: str, start: str, end: str, request_id: str | None, output: str
) -> None:
    """Announce planned maintenance (needs the sre role)."""
    notice = ntf_res.MaintenanceNotice(title=title, message=message, start_time=_ts(start), end_time=_ts(end))
    created = client_of(ctx).call(
        "notifier",
        "CreateMaintenanceNotice",
        ntf.CreateMaintenanceNoticeRequest(notice=notice, request_id=new_request_id(request_id)),
    )
    emit(
        output,
        created,
        lambda: (
            "Created maintenance notice.\n"
            + key_values(
                [
                    ("notice", created.name),
                    ("title", created.title),
                    ("window", f"{fmt_time(created.start_time)} → {fmt_time(created.end_time)}"),
                ]
            )
        ),
    )
