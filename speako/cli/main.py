"""``speako``: the whole publish workflow at a terminal, plus running the services and dev tokens."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import sys

import click

from chassis import auth
from chassis.settings import Settings, SettingsError
from speako.cli.activation import activate, calls, deactivate, numbers
from speako.cli.agents import agents
from speako.cli.client import Client
from speako.cli.drafts import draft
from speako.cli.notifications import notices, notifications
from speako.cli.publishing import jobs, publish
from speako.cli.versions import versions

SERVICES = ("config", "publisher", "notifier", "activation")
log = logging.getLogger("speako.cli")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


_DEFAULTS = Settings()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--config-addr",
    envvar="SPEAKO_CONFIG_ADDR",
    default=_DEFAULTS.config_addr,
    show_default=True,
    help="ConfigService address (env SPEAKO_CONFIG_ADDR).",
)
@click.option(
    "--notifier-addr",
    envvar="SPEAKO_NOTIFIER_ADDR",
    default=_DEFAULTS.notifier_addr,
    show_default=True,
    help="NotifierService address (env SPEAKO_NOTIFIER_ADDR).",
)
@click.option(
    "--activation-addr",
    envvar="SPEAKO_ACTIVATION_ADDR",
    default=_DEFAULTS.activation_addr,
    show_default=True,
    help="ActivationService address (env SPEAKO_ACTIVATION_ADDR).",
)
@click.option("--token", envvar="SPEAKO_TOKEN", default=None, help="Bearer JWT (env SPEAKO_TOKEN).")
@click.option(
    "--timeout",
    type=float,
    envvar="SPEAKO_CLI_TIMEOUT_S",
    default=10.0,
    show_default=True,
    help="Deadline of each call, in seconds (env SPEAKO_CLI_TIMEOUT_S).",
)
@click.version_option(package_name="speako-publish", prog_name="speako")
@click.pass_context
def main(
    ctx: click.Context, config_addr: str, notifier_addr: str, activation_addr: str, token: str | None, timeout: float
) -> None:
    """Speako Publish: drafts, versions and reliable publishing of AI receptionists.

    Agents are written TENANT/AGENT (acme/front-desk) or as full names
    (tenants/acme/agents/front-desk); with a single-tenant token, AGENT alone works too.

    \b
    Example (local, dev mode):
      SPEAKO_ENV=dev speako serve all &
      export SPEAKO_TOKEN=$(SPEAKO_ENV=dev speako token --tenant acme --role admin)
      speako agents create acme/front-desk --display-name "Front desk"
      speako draft set acme/front-desk greetings.opening_greeting "Hi, thanks for calling {business_name}"
      speako publish acme/front-desk
    """
    client = Client(
        addrs={"config": config_addr, "notifier": notifier_addr, "activation": activation_addr},
        token=token.strip() if token else None,
        timeout=timeout,
    )
    ctx.obj = client
    ctx.call_on_close(client.close)


@main.command()
@click.argument("service", type=click.Choice([*SERVICES, "all"]))
@click.option(
    "--create-database/--no-create-database",
    default=True,
    show_default=True,
    help="Create the database named in SPEAKO_DATABASE_URL if it is missing.",
)
def serve(service: str, create_database: bool) -> None:
    """Run one service, or all four in one process (local use).

    \b
    Example:
      SPEAKO_ENV=dev speako serve all
    """
    # Imported here: the client commands start faster without the server stack.
    from chassis.database import ensure_database
    from chassis.logs import configure_logging
    from chassis.server import GrpcApp, run_apps, run_event_loop

    settings = _settings()
    configure_logging(f"speako-{service}")
    if settings.dev_mode:
        log.warning(
            "SPEAKO_ENV=dev: development mode, tokens are signed with a built-in secret; never expose this deployment"
        )
    names = SERVICES if service == "all" else (service,)

    async def run() -> None:
        if create_database:
            await ensure_database(settings.database_url)
        apps: list[GrpcApp] = []
        # SPEAKO_LISTEN_ADDR only makes sense for one service per process (containers).
        listen_addr = settings.listen_addr if len(names) == 1 and settings.listen_addr else None
        for name in names:
            module = importlib.import_module(f"services.{name}.main")
            apps.append(await module.create_app(settings, listen_addr=listen_addr))
        await run_apps(apps)

    try:
        run_event_loop(run(), settings.event_loop)
    except KeyboardInterrupt:
        sys.exit(130)


@main.command()
@click.argument("addresses", nargs=-1)
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for each answer.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def health(ctx: click.Context, addresses: tuple[str, ...], timeout: float, output: str) -> None:
    """Check that services answer SERVING (grpc.health.v1); exits 1 otherwise.

    Without ADDRESSES, checks the four services at the global options' addresses
    (SPEAKO_*_ADDR or the defaults).

    \b
    Example:
      speako health 127.0.0.1:50051 127.0.0.1:50052 127.0.0.1:50053 127.0.0.1:50054
    """
    from speako.cli.probe import check_health

    if not addresses:
        client = ctx.find_root().obj
        publisher_addr = os.environ.get("SPEAKO_PUBLISHER_ADDR") or _DEFAULTS.publisher_addr
        addresses = (
            client.addrs["config"],
            publisher_addr,
            client.addrs["notifier"],
            client.addrs["activation"],
        )
    results = asyncio.run(check_health(addresses, timeout))
    if output == "json":
        click.echo(json.dumps(results, indent=2))
    else:
        for addr, status in results.items():
            click.echo(f"{addr}\t{status}")
    if any(status != "SERVING" for status in results.values()):
        sys.exit(1)


@main.command("token")
@click.option("--tenant", default="*", show_default=True, help="Tenant id the token is for, or '*'.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    default=("admin",),
    show_default=True,
    type=click.Choice(sorted(auth.ROLE_GRANTS)),
    help="Role to grant (repeatable).",
)
@click.option("--subject", default="dev@localhost", show_default=True)
@click.option("--ttl", default=3600 * 12, show_default=True, help="Lifetime in seconds.")
def token(tenant: str, roles: tuple[str, ...], subject: str, ttl: int) -> None:
    """Mint a token for local use (dev mode only).

    \b
    Example:
      export SPEAKO_TOKEN=$(SPEAKO_ENV=dev speako token --tenant acme --role admin)
    """
    settings = _settings()
    if not settings.dev_mode:
        raise click.ClickException("speako token only works with SPEAKO_ENV=dev")
    click.echo(auth.mint_token(settings.auth_secret, subject=subject, tenant=tenant, roles=roles, ttl_s=ttl))


for _command in (agents, draft, publish, jobs, versions, numbers, activate, deactivate, calls, notifications, notices):
    main.add_command(_command)
