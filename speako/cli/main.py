"""``speako``: run the services, and mint development tokens."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys

import click

from chassis import auth
from chassis.database import ensure_database
from chassis.logs import configure_logging
from chassis.server import GrpcApp, run_apps
from chassis.settings import Settings, SettingsError

SERVICES = ("config", "publisher", "notifier", "activation")
log = logging.getLogger("speako.cli")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """Speako Publish: drafts, versions and reliable publishing of AI receptionists."""


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
        asyncio.run(run())
    except KeyboardInterrupt:
        sys.exit(130)


@main.command()
@click.argument("addresses", nargs=-1)
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for each answer.")
def health(addresses: tuple[str, ...], timeout: float) -> None:
    """Check that services answer SERVING (grpc.health.v1); exits 1 otherwise.

    \b
    Example:
      speako health 127.0.0.1:50051 127.0.0.1:50052 127.0.0.1:50053 127.0.0.1:50054
    """
    from speako.cli.probe import check_health

    if not addresses:
        settings = _settings() if os.environ.get("SPEAKO_AUTH_SECRET") else Settings()
        addresses = (settings.config_addr, settings.publisher_addr, settings.notifier_addr, settings.activation_addr)
    results = asyncio.run(check_health(addresses, timeout))
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
