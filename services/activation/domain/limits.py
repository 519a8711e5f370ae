"""Bounds on what one agent may hold."""

# Phone numbers one agent may hold (keeps statuses and routing snapshots small).
MAX_PHONE_NUMBERS_PER_AGENT = 100
