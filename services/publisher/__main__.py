"""``python -m services.publisher``: run the publisher alone with settings from the environment."""

from __future__ import annotations

from chassis.logs import configure_logging
from chassis.server import run_apps, run_event_loop
from chassis.settings import Settings
from services.publisher.main import SERVICE_NAME, create_app


async def _main(settings: Settings) -> None:
    await run_apps([await create_app(settings)])


if __name__ == "__main__":
    configure_logging(SERVICE_NAME)
    settings = Settings.from_env()
    run_event_loop(_main(settings), settings.event_loop)
