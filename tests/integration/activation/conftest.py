"""Fixtures of the activation integration tests (defined in activation_support)."""

from tests.integration.activation.activation_support import events, start_replica

__all__ = ["events", "start_replica"]
