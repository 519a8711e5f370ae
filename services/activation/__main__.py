"""``python -m services.activation``: run the activation service alone with settings from the environment."""

from __future__ import annotations

import asyncio

from chassis.logs import configure_logging
from chassis.server import run_apps
from chassis.settings import Settings
from services.activation.main import SERVICE_NAME, create_app


async def _main() -> None:
    settings = Settings.from_env()
    await run_apps([await create_app(settings)])


if __name__ == "__main__":
    configure_logging(SERVICE_NAME)
    asyncio.run(_main())
