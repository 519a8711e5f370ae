"""Fixtures of the config integration tests (defined in config_support)."""

from tests.integration.config.config_support import app, channel, client, db

__all__ = ["app", "channel", "client", "db"]
