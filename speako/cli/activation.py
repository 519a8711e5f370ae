"""Activation: phone numbers, activate/deactivate, and test calls."""

from __future__ import annotations

import time
from collections.abc import Callable

import click

from speako.activation.v1 import activation_service_pb2 as act
from speako.activation.v1 import resources_pb2 as act_res
from speako.cli import refs
from speako.cli.agents import agent_state
from speako.cli.common import client_of, emit, expand, new_request_id, output_option, request_id_option, with_examples
from speako.cli.errors import ServerError
from speako.cli.render import fmt_time, key_values, table


def status_text(status: act_res.AgentStatus) -> str:
    """The lines shown after every lifecycle change."""
    by_version = ", ".join(
        f"v{refs.version_number(v.version)}: {v.active_calls}" for v in status.active_calls_by_version
    )
    return key_values(
        [
            ("agent", status.name),
            ("state", agent_state(status.state)),
            ("live version", refs.version_number(status.live_version) or "none"),
            ("phone numbers", ", ".join(status.phone_numbers) or "none"),
            ("active calls", f"{status.active_calls}" + (f" ({by_version})" if by_version else "")),
        ]
    )


@click.group()
def numbers() -> None:
    """Assign and release the phone numbers routed to an agent (admin).

    \b
    Example:
      speako numbers assign acme/front-desk +14155550123
    """


def _number_command(rpc: str, verb: str, request_type: type) -> Callable[..., None]:
    @click.argument("agent")
    @click.argument("phone_number")
    @request_id_option
    @output_option()
    @click.pass_context
    def command(ctx: click.Context, agent: str, phone_number: str, request_id: str | None, output: str) -> None:
        client = client_of(ctx)
        status = client.call(
            "activation",
            rpc,
            request_type(
                name=expand(refs.agent_name, agent, client.tenant),
                phone_number=phone_number,
                request_id=new_request_id(request_id),
            ),
        )
        emit(output, status, lambda: f"{verb} {phone_number}.\n{status_text(status)}")

    return command


numbers.command(
    "assign",
    help="Route a phone number (E.164) to an agent; a number belongs to one agent only.\n\n"
    "\b\nExample:\n  speako numbers assign acme/front-desk +14155550123\n",
)(_number_command("AssignPhoneNumber", "Assigned", act.AssignPhoneNumberRequest))
numbers.command(
    "release",
    help="Stop routing a phone number to an agent.\n\n"
    "\b\nExample:\n  speako numbers release acme/front-desk +14155550123\n",
)(_number_command("ReleasePhoneNumber", "Released", act.ReleasePhoneNumberRequest))


@click.command("activate")
@click.argument("agent")
@request_id_option
@output_option()
@with_examples("speako activate acme/front-desk")
@click.pass_context
def activate(ctx: click.Context, agent: str, request_id: str | None, output: str) -> None:
    """Put an agent live on its phone numbers (admin); lists every unmet launch item otherwise."""
    client = client_of(ctx)
    name = expand(refs.agent_name, agent, client.tenant)
    try:
        status = client.call(
            "activation", "ActivateAgent", act.ActivateAgentRequest(name=name, request_id=new_request_id(request_id))
        )
    except ServerError as exc:
        unmet = exc.report.precondition_violations
        if exc.report.code == "FAILED_PRECONDITION" and unmet:
            exc.text = f"{refs.short(name)} cannot be activated: {len(unmet)} launch item(s) unmet"
            exc.show()
            click.echo(
                table(["UNMET", "SUBJECT", "WHAT TO DO"], [(t, s, d) for t, s, d in unmet]),
                err=True,
            )
            for field, description, _reason in exc.report.field_violations:
                click.echo(f"  {field}: {description}", err=True)
            ctx.exit(exc.exit_code)
        raise
    emit(output, status, lambda: f"Activated {refs.short(name)}.\n{status_text(status)}")


@click.command("deactivate")
@click.argument("agent")
@click.option("--wait", is_flag=True, help="Wait until the calls in progress have finished.")
@click.option("--max-wait", type=float, default=600.0, show_default=True, metavar="SECONDS")
@request_id_option
@output_option()
@with_examples("speako deactivate acme/front-desk --wait")
@click.pass_context
def deactivate(
    ctx: click.Context, agent: str, wait: bool, max_wait: float, request_id: str | None, output: str
) -> None:
    """Route no new calls to an agent (admin); calls in progress finish on their version."""
    client = client_of(ctx)
    name = expand(refs.agent_name, agent, client.tenant)
    status = client.call(
        "activation", "DeactivateAgent", act.DeactivateAgentRequest(name=name, request_id=new_request_id(request_id))
    )
    emit(
        output, status, lambda: f"Deactivated {refs.short(name)}: no new calls are routed to it.\n{status_text(status)}"
    )
    if status.active_calls and output == "table":
        click.echo(f"{status.active_calls} call(s) still draining on their pinned version.")
    if not wait:
        return
    end = time.monotonic() + max_wait
    while status.active_calls and time.monotonic() < end:
        time.sleep(1.0)
        status = client.call("activation", "GetAgentStatus", act.GetAgentStatusRequest(name=name))
        click.echo(f"  {status.active_calls} call(s) in progress", err=True)
    if status.active_calls:
        click.echo(f"Still {status.active_calls} call(s) in progress after {max_wait:g}s.", err=True)
        ctx.exit(1)
    click.echo("All calls have finished.", err=True)


@click.group()
def calls() -> None:
    """Route test calls (needs a token with the service role).

    \b
    Example:
      speako --token "$(SPEAKO_ENV=dev speako token --role service)" calls route +14155550123
    """


def call_text(call: act_res.Call) -> str:
    """The lines shown for a call."""
    return key_values(
        [
            ("call", call.name),
            ("agent", call.agent),
            ("version", call.version),
            ("state", act_res.Call.State.Name(call.state).removeprefix("STATE_") if call.state else ""),
            ("from", call.caller_number),
            ("to", call.called_number),
            ("bundle sha256", call.bundle_sha256),
            ("started", fmt_time(call.start_time)),
            ("ended", fmt_time(call.end_time)),
        ]
    )


@calls.command("route")
@click.argument("called_number")
@click.option("--from", "caller_number", default="+15550000000", show_default=True, help="Caller's number (E.164).")
@output_option()
@with_examples(
    """
speako --token "$(SPEAKO_ENV=dev speako token --role service)" calls route +14155550123 --from +14155550999
"""
)
@click.pass_context
def route(ctx: click.Context, called_number: str, caller_number: str, output: str) -> None:
    """Place a test call to a number: shows the agent and the version pinned for the call."""
    try:
        call = client_of(ctx).call(
            "activation", "RouteCall", act.RouteCallRequest(called_number=called_number, caller_number=caller_number)
        )
    except ServerError as exc:
        if exc.report.code == "PERMISSION_DENIED":
            exc.text += (
                ". Test calls act as the telephony gateway: use a service token, e.g. "
                'speako --token "$(SPEAKO_ENV=dev speako token --role service)" calls route ...'
            )
        raise
    emit(output, call, lambda: call_text(call) + f"\nEnd it with: speako calls end {call.name}")


@calls.command("show")
@click.argument("call_name")
@output_option()
@with_examples("speako calls show calls/5f0c...")
@click.pass_context
def show_call(ctx: click.Context, call_name: str, output: str) -> None:
    """Show a call (calls/ID or ID)."""
    name = call_name if call_name.startswith("calls/") else f"calls/{call_name}"
    call = client_of(ctx).call("activation", "GetCall", act.GetCallRequest(name=name))
    emit(output, call, lambda: call_text(call))


@calls.command("end")
@click.argument("call_name")
@output_option()
@with_examples("speako calls end calls/5f0c...")
@click.pass_context
def end_call(ctx: click.Context, call_name: str, output: str) -> None:
    """Hang up a test call (calls/ID or ID)."""
    name = call_name if call_name.startswith("calls/") else f"calls/{call_name}"
    call = client_of(ctx).call("activation", "EndCall", act.EndCallRequest(name=name))
    emit(output, call, lambda: call_text(call))
