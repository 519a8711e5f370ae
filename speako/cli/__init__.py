"""The ``speako`` console script."""

from speako.cli.main import main

__all__ = ["main"]
