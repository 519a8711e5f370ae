"""Short references typed at a terminal, expanded to full resource names (pure, no I/O).

``acme/front-desk`` -> ``tenants/acme/agents/front-desk``; ``front-desk`` alone uses the tenant of
the caller's token. Full names are accepted everywhere and passed through unchanged, so the server
stays the one judge of whether an id is valid.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TENANT_FULL = re.compile(r"^tenants/[^/]+$")
_AGENT_FULL = re.compile(r"^tenants/[^/]+/agents/[^/]+$")
_VERSION_FULL = re.compile(r"^tenants/[^/]+/agents/[^/]+/versions/[^/]+$")
_JOB_FULL = re.compile(r"^tenants/[^/]+/agents/[^/]+/publishJobs/[^/]+$")


class RefError(ValueError):
    """A reference that cannot be expanded; the message says which forms are accepted."""


def token_tenant(token: str | None) -> str | None:
    """The tenant claim of a JWT (read without verifying: only used to expand short references)."""
    if not token:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    tenant = claims.get("tenant") if isinstance(claims, dict) else None
    return tenant if isinstance(tenant, str) and tenant and tenant != "*" else None


def _parts(ref: str) -> list[str]:
    ref = ref.strip().strip("/")
    if not ref:
        raise RefError("an empty reference")
    return ref.split("/")


def tenant_name(ref: str | None, default_tenant: str | None = None) -> str:
    """``acme`` or ``tenants/acme`` -> ``tenants/acme``; None -> the token's tenant."""
    if not ref:
        if not default_tenant:
            raise RefError("no tenant given and the token names no single tenant: pass one, e.g. acme")
        return f"tenants/{default_tenant}"
    if _TENANT_FULL.match(ref):
        return ref
    parts = _parts(ref)
    if len(parts) == 1:
        return f"tenants/{parts[0]}"
    raise RefError(f"{ref!r} is not a tenant: use acme or tenants/acme")


def agent_name(ref: str, default_tenant: str | None = None) -> str:
    """``acme/front-desk``, ``front-desk`` (token tenant) or a full name -> ``tenants/t/agents/a``."""
    if _AGENT_FULL.match(ref):
        return ref
    parts = _parts(ref)
    if parts[0] == "tenants":
        raise RefError(f"{ref!r} is not an agent: use acme/front-desk or tenants/acme/agents/front-desk")
    if len(parts) == 1:
        if not default_tenant:
            raise RefError(f"{ref!r} has no tenant and the token names no single tenant: write it as TENANT/{parts[0]}")
        return f"tenants/{default_tenant}/agents/{parts[0]}"
    if len(parts) == 2:
        return f"tenants/{parts[0]}/agents/{parts[1]}"
    raise RefError(f"{ref!r} is not an agent: use acme/front-desk or tenants/acme/agents/front-desk")


def parent_name(ref: str | None, default_tenant: str | None = None) -> str:
    """A tenant or an agent: ``acme`` -> tenant, ``acme/front-desk`` -> agent, full names as they are."""
    if not ref:
        return tenant_name(None, default_tenant)
    if _TENANT_FULL.match(ref) or _AGENT_FULL.match(ref):
        return ref
    parts = _parts(ref)
    if len(parts) == 1:
        return f"tenants/{parts[0]}"
    return agent_name(ref, default_tenant)


def draft_name(ref: str, default_tenant: str | None = None) -> str:
    """The draft of an agent reference (``.../draft`` accepted too)."""
    if ref.endswith("/draft"):
        ref = ref[: -len("/draft")]
    return f"{agent_name(ref, default_tenant)}/draft"


def version_name(ref: str, number: int | str | None = None, default_tenant: str | None = None) -> str:
    """``acme/front-desk`` + 3, ``acme/front-desk@3`` or a full version name -> ``.../versions/3``."""
    if number is None:
        if _VERSION_FULL.match(ref):
            return ref
        if "@" in ref:
            ref, number = ref.rsplit("@", 1)
        elif "/versions/" in ref:
            ref, number = ref.rsplit("/versions/", 1)
        else:
            raise RefError(f"{ref!r} names no version: use acme/front-desk@3 or give the number")
    text = str(number).lstrip("v")
    if not text.isdigit() or int(text) < 1:
        raise RefError(f"{number!r} is not a version number (1, 2, 3 ...)")
    return f"{agent_name(ref, default_tenant)}/versions/{int(text)}"


def version_number(name: str) -> int:
    """3 for ``.../versions/3`` (0 when the name carries no number)."""
    tail = name.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def is_job_ref(ref: str) -> bool:
    """True when the reference names one publish job rather than a tenant or an agent."""
    return bool(_JOB_FULL.match(ref)) or "/publishJobs/" in ref or bool(_UUID.match(ref.rsplit("/", 1)[-1]))


def job_name(ref: str, default_tenant: str | None = None) -> str:
    """``acme/front-desk/<uuid>``, ``acme/front-desk/publishJobs/<uuid>`` or a full job name."""
    if _JOB_FULL.match(ref):
        return ref
    if "/publishJobs/" in ref:
        agent, job = ref.rsplit("/publishJobs/", 1)
    elif "/" in ref.strip("/"):
        agent, job = ref.strip("/").rsplit("/", 1)
    else:
        raise RefError(f"{ref!r} is not a publish job: use acme/front-desk/<job id> or the full job name")
    return f"{agent_name(agent, default_tenant)}/publishJobs/{job}"


def notification_name(ref: str, default_tenant: str | None = None) -> str:
    """``acme/<id>``, ``<id>`` (token tenant) or ``tenants/acme/notifications/<id>``."""
    if ref.startswith("tenants/"):
        return ref
    parts = _parts(ref)
    if len(parts) == 1:
        return f"{tenant_name(None, default_tenant)}/notifications/{parts[0]}"
    if len(parts) == 2:
        return f"tenants/{parts[0]}/notifications/{parts[1]}"
    raise RefError(f"{ref!r} is not a notification: use acme/<id> or tenants/acme/notifications/<id>")


def short(name: str) -> str:
    """The short form of a resource name for tables: ``tenants/acme/agents/fd`` -> ``acme/fd``."""
    m = re.match(r"^tenants/([^/]+)/agents/([^/]+)(/.*)?$", name)
    if not m:
        return name.removeprefix("tenants/")
    rest = m.group(3) or ""
    return f"{m.group(1)}/{m.group(2)}{rest}"
