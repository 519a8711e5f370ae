"""``speako versions``: history, show, diff, restore and rollback."""

from __future__ import annotations

import click

from speako.activation.v1 import activation_service_pb2 as act
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
from speako.cli.errors import ServerError, UsageProblem
from speako.cli.protodata import message_to_dict, to_yaml
from speako.cli.publishing import follow_and_exit, max_wait_option
from speako.cli.render import diff_lines, fmt_time, table
from speako.config.v1 import config_service_pb2 as cfg

DIFF_COLOURS = {"add": "green", "remove": "red", "change": "yellow"}


@click.group()
def versions() -> None:
    """Version history of an agent: list, show, diff, restore, roll back.

    \b
    Example:
      speako versions diff acme/front-desk 1 2
    """


def _live_version(ctx: click.Context, agent: str) -> str | None:
    """The agent's live version, or None when activation cannot say (the history still prints)."""
    try:
        status = client_of(ctx).call("activation", "GetAgentStatus", act.GetAgentStatusRequest(name=agent))
    except ServerError:
        return None
    return status.live_version


@versions.command("history")
@click.argument("agent")
@click.option("--limit", default=50, show_default=True, help="Most versions to show (newest first).")
@output_option()
@with_examples("speako versions history acme/front-desk")
@click.pass_context
def history(ctx: click.Context, agent: str, limit: int, output: str) -> None:
    """List the versions of an agent, newest first (the live one is marked)."""
    client = client_of(ctx)
    name = expand(refs.agent_name, agent, client.tenant)
    items, next_token = client.pages("config", "ListVersions", cfg.ListVersionsRequest(parent=name), "versions", limit)

    def render() -> str:
        live = _live_version(ctx, name)
        rows = [
            (
                ("* " if v.name == live else "  ") + str(v.number),
                fmt_time(v.create_time),
                v.creator,
                ", ".join(v.changed_sections) or "-",
                v.content_sha256[:12],
            )
            for v in items
        ]
        legend = "\n* = live" if live and any(v.name == live for v in items) else ""
        body = table(["  VERSION", "CREATED", "CREATOR", "CHANGED", "SHA256"], rows)
        return (body + legend) if items else f"{name} has no versions yet: speako publish {refs.short(name)}"

    emit(output, {"versions": items, "next_page_token": next_token}, render)
    more_hint(output, next_token, limit)


@versions.command("show")
@click.argument("agent")
@click.argument("number", required=False)
@output_option(default="yaml")
@with_examples(
    """
speako versions show acme/front-desk 2
speako versions show acme/front-desk@2 -o json
"""
)
@click.pass_context
def show(ctx: click.Context, agent: str, number: str | None, output: str) -> None:
    """Show one version: number, author, changed sections and the full config."""
    client = client_of(ctx)
    found = client.call(
        "config", "GetVersion", cfg.GetVersionRequest(name=expand(refs.version_name, agent, number, client.tenant))
    )
    if output == "yaml":
        click.echo(to_yaml(message_to_dict(found)), nl=False)
        return
    emit(output, found, lambda: to_yaml(message_to_dict(found)).rstrip())


@versions.command("diff")
@click.argument("agent")
@click.argument("base")
@click.argument("target", required=False)
@output_option()
@with_examples(
    """
speako versions diff acme/front-desk 1 2
speako versions diff acme/front-desk 3          # 2 -> 3
"""
)
@click.pass_context
def diff(ctx: click.Context, agent: str, base: str, target: str | None, output: str) -> None:
    """Show what changed between two versions (BASE → TARGET; one number N means N-1 → N)."""
    client = client_of(ctx)
    if target is None:
        target = base
        number = int(base.lstrip("v")) if base.lstrip("v").isdigit() else 0
        if number < 2:
            raise UsageProblem("give two versions, or one version after the first (e.g. 3 for 2 → 3)")
        base = str(number - 1)
    base_name = expand(refs.version_name, agent, base, client.tenant)
    target_name = expand(refs.version_name, agent, target, client.tenant)
    result = client.call("config", "DiffVersions", cfg.DiffVersionsRequest(base=base_name, target=target_name))

    def render() -> str:
        head = f"--- {base_name}\n+++ {target_name}"
        if not result.changes:
            return head + "\n(no differences)"
        body = "\n".join(click.style(text, fg=DIFF_COLOURS.get(style)) for style, text in diff_lines(result.changes))
        return f"{head}\n{body}\n{len(result.changes)} field(s) changed"

    emit(output, result, render)


def _restore(ctx: click.Context, version: str, etag: str, request_id: str | None) -> object:
    return client_of(ctx).call(
        "config",
        "RestoreVersion",
        cfg.RestoreVersionRequest(name=version, etag=etag, request_id=new_request_id(request_id)),
    )


@versions.command("restore")
@click.argument("agent")
@click.argument("number", required=False)
@click.option("--etag", default="", help="Only restore if the draft still has this etag.")
@request_id_option
@output_option()
@with_examples("speako versions restore acme/front-desk 2 && speako publish acme/front-desk")
@click.pass_context
def restore(ctx: click.Context, agent: str, number: str | None, etag: str, request_id: str | None, output: str) -> None:
    """Make the draft a copy of an earlier version's config (publish it to put it live)."""
    client = client_of(ctx)
    version = expand(refs.version_name, agent, number, client.tenant)
    draft = _restore(ctx, version, etag, request_id)
    agent_ref = refs.short(version.split("/versions/")[0])
    emit(
        output,
        draft,
        lambda: (
            f"The draft of {agent_ref} is now version {refs.version_number(version)}'s config. "
            f"Publish it with: speako publish {agent_ref}"
        ),
    )


@versions.command("rollback")
@click.argument("agent")
@click.argument("number", required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--follow/--no-follow", default=True, show_default=True, help="Follow the publish job to its end.")
@max_wait_option
@output_option()
@with_examples(
    """
speako versions rollback acme/front-desk 2
speako versions rollback acme/front-desk 2 --yes --no-follow
"""
)
@click.pass_context
def rollback(
    ctx: click.Context, agent: str, number: str | None, yes: bool, follow: bool, max_wait: float, output: str
) -> None:
    """Roll back: restore an earlier version into the draft and publish it (a new version number).

    Unpublished changes in the draft are replaced. Exits like 'speako publish'.
    """
    client = client_of(ctx)
    version = expand(refs.version_name, agent, number, client.tenant)
    agent_name = version.split("/versions/")[0]
    # Fail early (before asking) when the version does not exist.
    client.call("config", "GetVersion", cfg.GetVersionRequest(name=version))
    draft = client.call("config", "GetDraft", cfg.GetDraftRequest(name=f"{agent_name}/draft"))
    if not yes:
        warning = " The draft's unpublished changes will be replaced." if draft.has_unpublished_changes else ""
        click.confirm(
            f"Roll {refs.short(agent_name)} back to version {refs.version_number(version)} "
            f"(restore it into the draft and publish)?{warning}",
            abort=True,
            err=True,
        )
    # The etag makes the restore refuse if someone edited the draft while we asked.
    _restore(ctx, version, draft.etag, None)
    job = client.call(
        "config", "PublishDraft", cfg.PublishDraftRequest(name=f"{agent_name}/draft", request_id=new_request_id(None))
    )
    click.echo(
        f"Rolling back to version {refs.version_number(version)}: publishing {job.version}\njob {job.name}",
        err=output != "table",
    )
    if not follow:
        if output != "table":
            emit(output, job)
        return
    follow_and_exit(ctx, client, job, output, max_wait)
