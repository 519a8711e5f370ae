"""``python -m speako.cli``: the same as the ``speako`` console script."""

from speako.cli.main import main

main()
