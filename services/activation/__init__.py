"""Activation service: agent lifecycle, phone numbers, the runtime deploy target and call routing."""
