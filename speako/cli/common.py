"""Pieces every command uses: the client from the global options, --output, printing results."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
from google.protobuf.message import Message

from speako.cli import refs
from speako.cli.client import Client
from speako.cli.errors import UsageProblem
from speako.cli.protodata import message_to_dict, to_yaml

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = ("table", "json", "yaml")


def client_of(ctx: click.Context) -> Client:
    """The Client the top-level group built from the global options."""
    obj = ctx.find_root().obj
    if not isinstance(obj, Client):
        raise click.UsageError("no client configured")
    return obj


def output_option(default: str = "table") -> Callable[[F], F]:
    """``-o/--output table|json|yaml`` (env SPEAKO_OUTPUT) for read commands."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice(FORMATS),
        default=default,
        show_default=True,
        envvar="SPEAKO_OUTPUT",
        help="Output format; json and yaml print the API resource for scripts.",
    )


def expand(fn: Callable[..., str], *args: Any) -> str:
    """Run a refs expansion, turning a bad reference into a usage error (exit 2)."""
    try:
        return fn(*args)
    except refs.RefError as exc:
        raise UsageProblem(str(exc)) from None


def data_of(value: Message | Sequence[Message] | dict[str, Any]) -> Any:
    """Plain data of a message, a list of messages, or a dict holding messages."""
    if isinstance(value, Message):
        return message_to_dict(value, empty_lists=True)
    if isinstance(value, dict):
        return {k: data_of(v) if isinstance(v, Message | list | tuple | dict) else v for k, v in value.items()}
    return [data_of(v) for v in value]


def emit(output: str, value: Any, render_table: Callable[[], str] | None = None) -> None:
    """Print ``value`` as JSON/YAML, or the table rendering when output is ``table``."""
    if output == "table" and render_table is not None:
        text = render_table()
        if text:
            click.echo(text)
        return
    data = data_of(value)
    if output == "yaml":
        click.echo(to_yaml(data), nl=False)
    else:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def request_id_option(fn: F) -> F:
    """``--request-id`` for mutating commands (a fresh UUID by default, so a retry is safe to repeat)."""
    return click.option(
        "--request-id",
        default=None,
        metavar="UUID",
        help="Idempotency key; repeating a command with the same id changes nothing. Default: a new UUID.",
    )(fn)


def new_request_id(value: str | None) -> str:
    """The given request id, or a fresh UUID."""
    return value or str(uuid.uuid4())


def note(text: str) -> None:
    """Human commentary on stderr, so stdout stays clean for --output json/yaml."""
    click.echo(text, err=True)


def with_examples(text: str) -> Callable[[F], F]:
    """Append an Example block (kept verbatim by click) to a command's help."""

    def deco(fn: F) -> F:
        doc = (fn.__doc__ or "").rstrip()
        lines = "\n".join(f"  {line}" for line in text.strip().splitlines())
        fn.__doc__ = f"{doc}\n\n\b\nExample:\n{lines}\n"
        return fn

    return deco


def more_hint(output: str, next_page_token: str, limit: int) -> None:
    """Say on stderr that a table was cut at --limit (json/yaml carry next_page_token instead)."""
    if output == "table" and next_page_token:
        note(f"(showing the first {limit}; more with --limit)")
