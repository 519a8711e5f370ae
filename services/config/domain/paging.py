"""List pagination: page sizes and opaque page tokens bound to the list they came from."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


class BadPageToken(ValueError):
    """A page token this list did not issue."""


def page_size(requested: int) -> int:
    """Clamp a requested page size to [1, MAX_PAGE_SIZE]; 0 means the default."""
    if requested < 0:
        raise ValueError("page_size must not be negative")
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def encode_token(scope: str, position: Any) -> str:
    """An opaque token resuming the list ``scope`` after ``position``."""
    raw = json.dumps({"s": scope, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, scope: str) -> Any:
    """The position a token resumes from; BadPageToken when it is foreign or corrupt."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadPageToken("the page token is not one this service issued") from None
    if not isinstance(data, dict) or "p" not in data:
        raise BadPageToken("the page token is not one this service issued")
    if data.get("s") != scope:
        raise BadPageToken("the page token belongs to a different list (parent or filter changed)")
    return data["p"]
