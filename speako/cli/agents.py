"""``speako agents``: create, list and show the status of agents."""

from __future__ import annotations

import click

from speako.activation.v1 import activation_service_pb2 as act
from speako.activation.v1 import resources_pb2 as act_res
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
from speako.cli.render import fmt_time, key_values, table
from speako.config.v1 import config_service_pb2 as cfg
from speako.config.v1 import resources_pb2 as res


def agent_state(state: int) -> str:
    """``ACTIVE`` for STATE_ACTIVE."""
    enum = act_res.AgentStatus.State
    return enum.Name(state).removeprefix("STATE_") if state in enum.values() else str(state)


@click.group()
def agents() -> None:
    """Create, list and inspect agents (AI receptionists).

    \b
    Example:
      speako agents list acme
    """


@agents.command("create")
@click.argument("agent")
@click.option("--display-name", default="", help="Human-readable name shown in the dashboard.")
@request_id_option
@output_option()
@with_examples('speako agents create acme/front-desk --display-name "Front desk"')
@click.pass_context
def create(ctx: click.Context, agent: str, display_name: str, request_id: str | None, output: str) -> None:
    """Create an agent (TENANT/AGENT) with an empty draft."""
    client = client_of(ctx)
    name = expand(refs.agent_name, agent, client.tenant)
    parent, _, agent_id = name.rpartition("/agents/")
    created = client.call(
        "config",
        "CreateAgent",
        cfg.CreateAgentRequest(
            parent=parent,
            agent_id=agent_id,
            agent=res.Agent(display_name=display_name),
            request_id=new_request_id(request_id),
        ),
    )
    emit(output, created, lambda: f"Created agent {created.name}. Next: speako draft edit {refs.short(created.name)}")


@agents.command("list")
@click.argument("tenant", required=False)
@click.option("--limit", default=100, show_default=True, help="Most agents to show.")
@output_option()
@with_examples("speako agents list acme -o json")
@click.pass_context
def list_agents(ctx: click.Context, tenant: str | None, limit: int, output: str) -> None:
    """List a tenant's agents (the token's tenant when none is given)."""
    client = client_of(ctx)
    parent = expand(refs.tenant_name, tenant, client.tenant)
    items, next_token = client.pages("config", "ListAgents", cfg.ListAgentsRequest(parent=parent), "agents", limit)
    emit(
        output,
        {"agents": items, "next_page_token": next_token},
        lambda: (
            table(
                ["AGENT", "DISPLAY NAME", "LATEST VERSION", "CREATED"],
                [
                    (refs.short(a.name), a.display_name, a.latest_version_number or "-", fmt_time(a.create_time))
                    for a in items
                ],
            )
            + ("" if items else "\n(no agents)")
        ),
    )
    more_hint(output, next_token, limit)


@agents.command("status")
@click.argument("agent")
@output_option()
@with_examples("speako agents status acme/front-desk")
@click.pass_context
def status(ctx: click.Context, agent: str, output: str) -> None:
    """Show an agent: lifecycle state, live version, phone numbers, calls, unpublished changes."""
    client = client_of(ctx)
    name = expand(refs.agent_name, agent, client.tenant)
    found = client.call("config", "GetAgent", cfg.GetAgentRequest(name=name))
    draft = client.call("config", "GetDraft", cfg.GetDraftRequest(name=f"{name}/draft"))
    live = client.call("activation", "GetAgentStatus", act.GetAgentStatusRequest(name=name))

    def render() -> str:
        by_version = ", ".join(
            f"v{refs.version_number(v.version)}: {v.active_calls}" for v in live.active_calls_by_version
        )
        calls = f"{live.active_calls}" + (f" ({by_version})" if by_version else "")
        return key_values(
            [
                ("agent", found.name),
                ("display name", found.display_name),
                ("state", agent_state(live.state)),
                ("live version", refs.version_number(live.live_version) or "none"),
                ("latest version", found.latest_version_number or "none"),
                ("unpublished changes", draft.has_unpublished_changes),
                ("phone numbers", ", ".join(live.phone_numbers) or "none"),
                ("active calls", calls),
                ("created", fmt_time(found.create_time)),
                ("draft updated", fmt_time(draft.update_time)),
            ]
        )

    emit(
        output,
        {
            "agent": found,
            "status": live,
            "draft": {
                "name": draft.name,
                "etag": draft.etag,
                "update_time": draft.update_time.ToJsonString(),
                "has_unpublished_changes": draft.has_unpublished_changes,
            },
        },
        render,
    )
