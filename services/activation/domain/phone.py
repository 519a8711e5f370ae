"""E.164 phone numbers."""

from __future__ import annotations

import re

from services.activation.domain.errors import InvalidPhoneNumber

# '+', a country code that does not start with 0, at most 15 digits in all (ITU-T E.164).
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def is_e164(value: str) -> bool:
    """Whether value is an E.164 number such as +14155550123."""
    return _E164.fullmatch(value) is not None


def parse_e164(value: str, field: str) -> str:
    """Return value if it is E.164, else raise InvalidPhoneNumber naming the field."""
    if not value:
        raise InvalidPhoneNumber(field, value, "is required (E.164, e.g. +14155550123)")
    if not is_e164(value):
        raise InvalidPhoneNumber(field, value, "must be E.164: '+' then 2 to 15 digits, no spaces (e.g. +14155550123)")
    return value
