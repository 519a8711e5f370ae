"""``speako publish`` and ``speako jobs``: submit, follow, list and watch publish jobs."""

from __future__ import annotations

import json
import queue
import time
from datetime import UTC, datetime
from typing import Any

import click
from google.protobuf import timestamp_pb2

from speako.cli import refs
from speako.cli.client import Client
from speako.cli.common import (
    client_of,
    data_of,
    emit,
    expand,
    more_hint,
    new_request_id,
    output_option,
    request_id_option,
    with_examples,
)
from speako.cli.errors import EXIT_INTERRUPTED, EXIT_SERVER_ERROR, EXIT_SUPERSEDED, UsageProblem
from speako.cli.follow import Display, Interrupted, Pump, exit_interrupted, follow_job
from speako.cli.protodata import to_yaml
from speako.cli.render import (
    State,
    fmt_elapsed,
    fmt_time,
    job_elapsed,
    job_error,
    key_values,
    parse_when,
    state_name,
    table,
)
from speako.config.v1 import config_service_pb2 as cfg
from speako.config.v1 import resources_pb2 as res
from speako.notifier.v1 import notifier_service_pb2 as ntf

DEFAULT_MAX_WAIT_S = 900.0
STATE_CHOICES = ("submitted", "processing", "published", "failed", "superseded")


def max_wait_option(fn: Any) -> Any:
    return click.option(
        "--max-wait",
        type=float,
        default=DEFAULT_MAX_WAIT_S,
        show_default=True,
        metavar="SECONDS",
        help="Stop following after this long (the job itself goes on).",
    )(fn)


def exit_code_for(job: res.PublishJob | None) -> int:
    """0 published, 1 failed (or still running when the wait ran out), 3 superseded."""
    if job is None:
        return EXIT_SERVER_ERROR
    if job.state == State.STATE_PUBLISHED:
        return 0
    if job.state == State.STATE_SUPERSEDED:
        return EXIT_SUPERSEDED
    return EXIT_SERVER_ERROR


def follow_and_exit(ctx: click.Context, client: Client, job: res.PublishJob, output: str, max_wait: float) -> None:
    """Follow a job live, print the outcome (and the job in json/yaml), exit with its code."""
    display = Display(err=output != "table")
    try:
        final = follow_job(client, job.name, display=display, max_wait=max_wait, known=job)
    except Interrupted:
        exit_interrupted(ctx, job.name)
        return
    if final is None:
        click.echo(
            f"Still not finished after {fmt_elapsed(max_wait)}; the job goes on. "
            f"Keep watching with: speako jobs watch {job.name}",
            err=True,
        )
    else:
        if output != "table":
            emit(output, final)
        if final.state == State.STATE_FAILED:
            agent = refs.short(final.name.split("/publishJobs/")[0])
            click.echo(
                "The previous live version keeps serving and the draft is unchanged. "
                f"After fixing the cause, retry with: speako publish {agent}",
                err=True,
            )
    ctx.exit(exit_code_for(final))


@click.command("publish")
@click.argument("agent")
@click.option("--follow/--no-follow", default=True, show_default=True, help="Follow the job until it finishes.")
@click.option("--etag", default="", help="Publish only if the draft still has this etag (what you reviewed).")
@max_wait_option
@request_id_option
@output_option()
@with_examples(
    """
speako publish acme/front-desk
speako publish acme/front-desk --no-follow -o json | jq -r .name
"""
)
@click.pass_context
def publish(
    ctx: click.Context, agent: str, follow: bool, etag: str, max_wait: float, request_id: str | None, output: str
) -> None:
    """Publish the draft as a version and follow the job: Submitting → Processing → Published / Failed.

    Exit status: 0 published, 1 failed (reason and message printed), 3 superseded by a newer
    version, 130 when you stop following with Ctrl-C (the job goes on; 'speako jobs watch' resumes).
    """
    client = client_of(ctx)
    name = expand(refs.draft_name, agent, client.tenant)
    job = client.call(
        "config", "PublishDraft", cfg.PublishDraftRequest(name=name, request_id=new_request_id(request_id), etag=etag)
    )
    changed = ", ".join(job.changed_sections) or "nothing new"
    click.echo(
        f"Publishing {job.version} (changed: {changed})\njob {job.name}\ntrace {job.trace_id}",
        err=output != "table",
    )
    if not follow:
        if output != "table":
            emit(output, job)
        else:
            click.echo(f"Follow it with: speako jobs watch {job.name}")
        return
    follow_and_exit(ctx, client, job, output, max_wait)


@click.group()
def jobs() -> None:
    """List, show and watch publish jobs.

    \b
    Example:
      speako jobs list acme --state failed --since 24h
    """


def _ts(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def _job_row(job: res.PublishJob) -> tuple[Any, ...]:
    agent, _, job_id = job.name.partition("/publishJobs/")
    elapsed = job_elapsed(job, datetime.now(UTC))
    return (
        job_id,
        refs.short(agent),
        refs.version_number(job.version) or "",
        state_name(job.state),
        job.attempts,
        fmt_time(job.create_time),
        fmt_elapsed(elapsed),
        job_error(job),
    )


JOB_HEADERS = ["JOB", "AGENT", "VERSION", "STATE", "ATTEMPTS", "CREATED", "ELAPSED", "ERROR"]


@jobs.command("list")
@click.argument("parent", required=False)
@click.option(
    "--state", "states", multiple=True, type=click.Choice(STATE_CHOICES), help="Only jobs in this state (repeatable)."
)
@click.option("--since", help="Created at or after: a duration ago (30m, 2h, 7d) or a time (2026-11-22T09:00Z).")
@click.option("--until", help="Created before: a duration ago or a time.")
@click.option("--limit", default=50, show_default=True, help="Most jobs to show (newest first).")
@output_option()
@with_examples(
    """
speako jobs list acme --state failed --since 24h
speako jobs list acme/front-desk -o json
"""
)
@click.pass_context
def list_jobs(
    ctx: click.Context,
    parent: str | None,
    states: tuple[str, ...],
    since: str | None,
    until: str | None,
    limit: int,
    output: str,
) -> None:
    """List the publish jobs of a tenant or an agent, newest first."""
    client = client_of(ctx)
    request = ntf.ListPublishJobsRequest(
        parent=expand(refs.parent_name, parent, client.tenant),
        states=[State.Value(f"STATE_{s.upper()}") for s in states],  # type: ignore[misc]
    )
    try:
        if since:
            request.create_time_start.CopyFrom(_ts(parse_when(since)))
        if until:
            request.create_time_end.CopyFrom(_ts(parse_when(until)))
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    items, next_token = client.pages("notifier", "ListPublishJobs", request, "publish_jobs", limit)
    emit(
        output,
        {"publish_jobs": items, "next_page_token": next_token},
        lambda: table(JOB_HEADERS, [_job_row(j) for j in items]) + ("" if items else "\n(no publish jobs)"),
    )
    more_hint(output, next_token, limit)


@jobs.command("show")
@click.argument("job")
@output_option()
@with_examples("speako jobs show acme/front-desk/0d6f2d1e-8a84-4c34-9a53-0f3b1c2d4e5f")
@click.pass_context
def show_job(ctx: click.Context, job: str, output: str) -> None:
    """Show one publish job (AGENT/JOB_ID or the full job name)."""
    client = client_of(ctx)
    found = client.call(
        "notifier", "GetPublishJob", ntf.GetPublishJobRequest(name=expand(refs.job_name, job, client.tenant))
    )
    emit(
        output,
        found,
        lambda: key_values(
            [
                ("job", found.name),
                ("version", found.version),
                ("state", state_name(found.state)),
                ("error", job_error(found) or "-"),
                ("attempts", found.attempts),
                ("changed", ", ".join(found.changed_sections) or "-"),
                ("requester", found.requester),
                ("created", fmt_time(found.create_time)),
                ("updated", fmt_time(found.update_time)),
                ("deadline", fmt_time(found.deadline)),
                ("elapsed", fmt_elapsed(job_elapsed(found, datetime.now(UTC)))),
                ("trace id", found.trace_id),
            ]
        ),
    )


@jobs.command("watch")
@click.argument("target")
@click.option("--resume-token", default="", help="Resume a tenant/agent stream after this update (no gaps).")
@click.option("--max-time", type=float, default=None, metavar="SECONDS", help="Stop watching after this long.")
@click.option(
    "--heartbeats", is_flag=True, help="With -o json/yaml, also print keep-alive updates (they carry a resume token)."
)
@output_option()
@with_examples(
    """
speako jobs watch tenants/acme/agents/front-desk/publishJobs/0d6f2d1e-8a84-4c34-9a53-0f3b1c2d4e5f
speako jobs watch acme                          # every job update of the tenant, until Ctrl-C
speako jobs watch acme/front-desk -o json --resume-token "$TOKEN"
"""
)
@click.pass_context
def watch(
    ctx: click.Context, target: str, resume_token: str, max_time: float | None, heartbeats: bool, output: str
) -> None:
    """Follow one job to its end, or stream every job update of a tenant or an agent.

    With a job, exits like 'speako publish' (0 published, 1 failed, 3 superseded). With a tenant or
    an agent, prints one line per update (JSON Lines with -o json, each with its resume_token) until
    Ctrl-C or --max-time, then prints the token to resume from.
    """
    client = client_of(ctx)
    if refs.is_job_ref(target):
        name = expand(refs.job_name, target, client.tenant)
        follow_and_exit(ctx, client, res.PublishJob(name=name), output, max_time or DEFAULT_MAX_WAIT_S)
        return
    parent = expand(refs.parent_name, target, client.tenant)
    _watch_stream(ctx, client, parent, resume_token, max_time, heartbeats, output)


def _watch_stream(
    ctx: click.Context,
    client: Client,
    parent: str,
    resume_token: str,
    max_time: float | None,
    heartbeats: bool,
    output: str,
) -> None:
    position = {"token": resume_token}

    def track(update: Any) -> None:
        if update.resume_token:
            position["token"] = update.resume_token

    def open_stream(timeout: float) -> Any:
        request = ntf.WatchPublishJobsRequest(parent=parent, resume_token=position["token"])
        return client.stream("notifier", "WatchPublishJobs", request, timeout)

    until = time.monotonic() + (max_time if max_time is not None else 10 * 365 * 86400.0)
    pump = Pump(open_stream, until, track).start()
    if output == "table":
        click.echo(f"Watching publish jobs of {parent} (Ctrl-C to stop)", err=True)
        click.echo(stream_row(["TIME", "AGENT", "VERSION", "STATE", "ATTEMPTS", "JOB", "ERROR"]))
    code = 0
    try:
        while True:
            try:
                kind, payload = pump.items.get(timeout=1.0)
            except queue.Empty:
                continue
            if kind == "item":
                if payload.heartbeat and not (heartbeats and output != "table"):
                    continue
                _print_update(payload, output)
            elif kind == "reconnecting":
                click.echo("(notifier unavailable; reconnecting…)", err=True)
            elif kind == "error":
                raise client.error("notifier", payload)
            else:
                break
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    finally:
        pump.stop()
    if position["token"]:
        click.echo(f"Resume with: speako jobs watch {refs.short(parent)} --resume-token {position['token']}", err=True)
    ctx.exit(code)


def _print_update(update: Any, output: str) -> None:
    job = update.job
    if output == "json":
        click.echo(json.dumps(data_of(update), ensure_ascii=False))
    elif output == "yaml":
        click.echo("---\n" + to_yaml(data_of(update)), nl=False)
    else:
        agent, _, job_id = job.name.partition("/publishJobs/")
        cells = [
            fmt_time(job.update_time),
            refs.short(agent),
            f"v{refs.version_number(job.version)}",
            state_name(job.state),
            str(job.attempts),
            job_id,
            job_error(job),
        ]
        click.echo(stream_row(cells))


# A stream cannot be measured in advance: fixed widths keep its rows in columns.
STREAM_WIDTHS = (20, 24, 7, 10, 8, 36)


def stream_row(cells: list[str]) -> str:
    """One row of the live job stream, columns padded to STREAM_WIDTHS."""
    padded = [c.ljust(w) for c, w in zip(cells, STREAM_WIDTHS, strict=False)]
    return "  ".join([*padded, *cells[len(STREAM_WIDTHS) :]]).rstrip()
