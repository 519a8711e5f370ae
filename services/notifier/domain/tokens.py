"""Opaque tokens: resume tokens (a durable feed position) and list page tokens (a keyset cursor)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass

_RESUME = re.compile(r"^nf1:([0-9a-f]{16}):(0|[1-9][0-9]{0,18})$")
MAX_POSITION = 2**63 - 1


class TokenError(ValueError):
    """A token that was not produced by this service (or was altered)."""


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64decode(token: str) -> bytes:
    if not token or len(token) > 512 or not re.fullmatch(r"[A-Za-z0-9_-]+", token):
        raise TokenError("not a token of this service")
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenError("not a token of this service") from exc


@dataclass(frozen=True)
class ResumeToken:
    """A position in one feed; ``epoch`` names the feed (a fresh database starts a new one)."""

    epoch: str
    position: int

    def encode(self) -> str:
        """The opaque string handed to clients."""
        return _b64encode(f"nf1:{self.epoch}:{self.position}".encode())

    @classmethod
    def decode(cls, token: str) -> ResumeToken:
        """Parse a token from a client; TokenError when malformed."""
        try:
            text = _b64decode(token).decode("ascii")
        except UnicodeDecodeError as exc:
            raise TokenError("not a resume token") from exc
        m = _RESUME.match(text)
        if not m or int(m.group(2)) > MAX_POSITION:
            raise TokenError("not a resume token")
        return cls(epoch=m.group(1), position=int(m.group(2)))


def filter_fingerprint(*parts: object) -> str:
    """A short digest of a list request's filters, bound into its page tokens."""
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PageCursor:
    """Keyset cursor for newest-first lists: the (time, id) of the last item returned."""

    time_us: int
    key: str
    fingerprint: str

    def encode(self) -> str:
        """The opaque next_page_token."""
        body = json.dumps({"t": self.time_us, "k": self.key, "f": self.fingerprint}, separators=(",", ":"))
        return _b64encode(body.encode())

    @classmethod
    def decode(cls, token: str, fingerprint: str) -> PageCursor:
        """Parse a page token; TokenError when malformed or issued for other filters."""
        try:
            data = json.loads(_b64decode(token))
        except (ValueError, UnicodeDecodeError) as exc:
            raise TokenError("not a page token of this list") from exc
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("t"), int)
            or not isinstance(data.get("k"), str)
            or not isinstance(data.get("f"), str)
        ):
            raise TokenError("not a page token of this list")
        if data["f"] != fingerprint:
            raise TokenError("page token was issued for a request with other filters")
        return cls(time_us=data["t"], key=data["k"], fingerprint=fingerprint)
