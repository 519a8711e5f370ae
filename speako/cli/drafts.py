"""``speako draft``: show, edit, set one field, validate."""

from __future__ import annotations

import sys
from typing import Any

import click
import yaml
from google.protobuf import field_mask_pb2

from speako.cli import refs
from speako.cli.common import client_of, emit, expand, new_request_id, output_option, request_id_option, with_examples
from speako.cli.errors import ServerError, UsageProblem
from speako.cli.protodata import DataError, config_from_data, config_with_field, flatten, message_to_dict, to_yaml
from speako.cli.render import checklist, fmt_time, key_values, table
from speako.config.v1 import config_service_pb2 as cfg
from speako.config.v1 import resources_pb2 as res

DRAFT_KEYS = frozenset({"name", "etag", "update_time", "has_unpublished_changes", "config"})


@click.group()
def draft() -> None:
    """Show and change an agent's draft (nothing reaches callers until you publish).

    \b
    Example:
      speako draft set acme/front-desk personality.tone friendly
    """


def _draft_yaml(found: res.Draft, config_only: bool) -> str:
    agent = refs.short(found.name.removesuffix("/draft"))
    header = (
        f"# Draft of {found.name.removesuffix('/draft')} (AgentConfig field names).\n"
        f"# Change it and save it back with: speako draft edit {agent} -f FILE\n"
    )
    body = message_to_dict(found.config) if config_only else message_to_dict(found)
    return header + to_yaml(body)


@draft.command("show")
@click.argument("agent")
@click.option("--config-only", "-c", is_flag=True, help="Print only the AgentConfig, without name and etag.")
@output_option(default="yaml")
@with_examples(
    """
speako draft show acme/front-desk > draft.yaml
speako draft show acme/front-desk -o json | jq .config.greetings
"""
)
@click.pass_context
def show(ctx: click.Context, agent: str, config_only: bool, output: str) -> None:
    """Print the draft as YAML (default), JSON, or a field-per-line table."""
    client = client_of(ctx)
    found = client.call("config", "GetDraft", cfg.GetDraftRequest(name=expand(refs.draft_name, agent, client.tenant)))
    if output == "yaml":
        click.echo(_draft_yaml(found, config_only), nl=False)
        return

    def render() -> str:
        meta = key_values(
            [
                ("draft", found.name),
                ("etag", found.etag),
                ("updated", fmt_time(found.update_time)),
                ("unpublished changes", found.has_unpublished_changes),
            ]
        )
        rows = flatten(message_to_dict(found.config))
        return meta + "\n\n" + table(["FIELD", "VALUE"], [r for r in rows if r[0]] or [("(empty)", "")], 80)

    emit(output, found.config if config_only else found, render)


def _load(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageProblem(f"{source} is not valid YAML/JSON: {' '.join(str(exc).split())}") from None


def draft_from_data(data: Any, name: str, use_etag: bool) -> res.Draft:
    """A Draft to write from a file's data: a whole Draft (with etag) or a bare AgentConfig."""
    if isinstance(data, dict) and "config" in data:
        unknown = sorted(set(data) - DRAFT_KEYS)
        if unknown:
            raise DataError(f"unknown draft field(s) {', '.join(unknown)}; expected {', '.join(sorted(DRAFT_KEYS))}")
        if data.get("name") and data["name"] != name:
            raise DataError(f"the file is the draft {data['name']}, not {name}")
        config = config_from_data(data["config"])
        etag = str(data.get("etag") or "") if use_etag else ""
        return res.Draft(name=name, config=config, etag=etag)
    return res.Draft(name=name, config=config_from_data(data))


@draft.command("edit")
@click.argument("agent")
@click.option(
    "-f",
    "--file",
    "path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="YAML or JSON file ('-' for stdin): a whole AgentConfig, or a Draft as printed by 'draft show'. "
    "Without it, opens $EDITOR on the current draft.",
)
@click.option("--force", is_flag=True, help="Overwrite even if the draft changed since the file's etag.")
@request_id_option
@output_option()
@with_examples(
    """
speako draft show acme/front-desk > draft.yaml   # edit draft.yaml, then:
speako draft edit acme/front-desk -f draft.yaml
speako draft edit acme/front-desk                # opens $EDITOR
"""
)
@click.pass_context
def edit(ctx: click.Context, agent: str, path: str | None, force: bool, request_id: str | None, output: str) -> None:
    """Replace the whole draft config from a file (or $EDITOR).

    A file printed by 'draft show' carries the draft's etag: if someone changed the draft since,
    the write is refused (ABORTED) instead of overwriting their change; --force overwrites.
    """
    client = client_of(ctx)
    name = expand(refs.draft_name, agent, client.tenant)
    if path is None:
        current = client.call("config", "GetDraft", cfg.GetDraftRequest(name=name))
        original = _draft_yaml(current, config_only=False)
        edited = click.edit(original, extension=".yaml")
        if edited is None or edited == original:
            click.echo("No changes; the draft is as it was.")
            return
        text, source = edited, "the edited draft"
    elif path == "-":
        text, source = sys.stdin.read(), "stdin"
    else:
        with open(path, encoding="utf-8") as fh:
            text, source = fh.read(), path
    try:
        new = draft_from_data(_load(text, source), name, use_etag=not force)
    except DataError as exc:
        raise UsageProblem(f"{source}: {exc}") from None
    try:
        saved = client.call(
            "config",
            "UpdateDraft",
            cfg.UpdateDraftRequest(draft=new, request_id=new_request_id(request_id)),
        )
    except ServerError as exc:
        if exc.report.code == "ABORTED":
            exc.text += " — show it again, or pass --force to overwrite"
        raise
    emit(output, saved, lambda: _saved_line(saved))


def _saved_line(saved: res.Draft) -> str:
    agent = refs.short(saved.name.removesuffix("/draft"))
    pending = "unpublished changes" if saved.has_unpublished_changes else "same as the latest version"
    return f"Saved {saved.name} ({pending}, etag {saved.etag}). Check it: speako draft validate {agent}"


def _set_field(
    ctx: click.Context, agent: str, path: str, raw: str | None, etag: str, request_id: str | None
) -> res.Draft:
    client = client_of(ctx)
    name = expand(refs.draft_name, agent, client.tenant)
    try:
        config = config_with_field(path, raw)
    except DataError as exc:
        raise UsageProblem(str(exc)) from None
    return client.call(
        "config",
        "UpdateDraft",
        cfg.UpdateDraftRequest(
            draft=res.Draft(name=name, config=config, etag=etag),
            update_mask=field_mask_pb2.FieldMask(paths=[path]),
            request_id=new_request_id(request_id),
        ),
    )


@draft.command("set")
@click.argument("agent")
@click.argument("field_path")
@click.argument("value")
@click.option("--etag", default="", help="Only write if the draft still has this etag.")
@request_id_option
@output_option()
@with_examples(
    """
speako draft set acme/front-desk greetings.opening_greeting "Hi, thanks for calling {business_name}"
speako draft set acme/front-desk personality.tone friendly
speako draft set acme/front-desk voice.additional_languages "[es-MX, fr-CA]"
speako draft set acme/front-desk pronunciations '{"Speako": "speak-oh"}'
speako draft set acme/front-desk personality.prompt - < prompt.txt
"""
)
@click.pass_context
def set_field(
    ctx: click.Context, agent: str, field_path: str, value: str, etag: str, request_id: str | None, output: str
) -> None:
    """Set one field of the draft by its AgentConfig path.

    Text fields take VALUE as typed; enums take a name (friendly or TONE_FRIENDLY); lists, maps and
    sections (tools, knowledge, flow, business_hours, ...) take YAML or JSON. '-' reads VALUE from stdin.
    """
    raw = sys.stdin.read().rstrip("\n") if value == "-" else value
    saved = _set_field(ctx, agent, field_path, raw, etag, request_id)
    emit(output, saved, lambda: f"Set {field_path}. " + _saved_line(saved))


@draft.command("unset")
@click.argument("agent")
@click.argument("field_path")
@click.option("--etag", default="", help="Only write if the draft still has this etag.")
@request_id_option
@output_option()
@with_examples("speako draft unset acme/front-desk greetings.recording_consent")
@click.pass_context
def unset_field(
    ctx: click.Context, agent: str, field_path: str, etag: str, request_id: str | None, output: str
) -> None:
    """Clear one field of the draft (back to empty) by its AgentConfig path."""
    saved = _set_field(ctx, agent, field_path, None, etag, request_id)
    emit(output, saved, lambda: f"Cleared {field_path}. " + _saved_line(saved))


@draft.command("validate")
@click.argument("agent")
@output_option()
@with_examples(
    """
speako draft validate acme/front-desk
speako draft validate acme/front-desk && speako publish acme/front-desk
"""
)
@click.pass_context
def validate(ctx: click.Context, agent: str, output: str) -> None:
    """Run the pre-launch checklist on the draft; exits 1 when it has errors."""
    client = client_of(ctx)
    report = client.call(
        "config", "ValidateDraft", cfg.ValidateDraftRequest(name=expand(refs.draft_name, agent, client.tenant))
    )
    body, summary, has_errors = checklist(report.violations)
    emit(output, report, lambda: f"{body}\n\n{summary}" if body else summary)
    if has_errors:
        ctx.exit(1)
