"""Authentication (HS256 JWT bearer tokens) and authorisation by role and tenant.

Each service declares ``POLICY``: full method name -> ``Rule``. The interceptor verifies the
token, checks the role, and checks the tenant of every resource name in the request, so a
handler only ever runs for a caller allowed to touch what it names.
"""

from __future__ import annotations

import contextvars
import functools
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import jwt
from google.protobuf.message import Message

from chassis.errors import PermissionDenied, Unauthenticated
from chassis.names import ID_PATTERN, tenant_of

ALGORITHM = "HS256"
ALL_TENANTS = "*"
MAX_SUBJECT_CHARS = 256
# Methods anyone may call: health checks and reflection.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class Access(Enum):
    """What an RPC does, which decides the roles that may call it."""

    READ = "read"
    EDIT = "edit"
    PUBLISH = "publish"
    ADMIN = "admin"
    SRE = "sre"
    SERVICE = "service"
    # A tenant member's own bookkeeping (marking notifications read): every tenant role, but never
    # across tenants, so the cross-tenant readers (sre, service) cannot change another tenant's state.
    MEMBER = "member"


ROLE_GRANTS: Mapping[str, frozenset[Access]] = {
    "viewer": frozenset({Access.READ, Access.MEMBER}),
    "editor": frozenset({Access.READ, Access.MEMBER, Access.EDIT}),
    "publisher": frozenset({Access.READ, Access.MEMBER, Access.EDIT, Access.PUBLISH}),
    "admin": frozenset({Access.READ, Access.MEMBER, Access.EDIT, Access.PUBLISH, Access.ADMIN}),
    "sre": frozenset({Access.READ, Access.SRE}),
    "service": frozenset({Access.READ, Access.SERVICE}),
}
# Roles that read every tenant whatever their tenant claim.
CROSS_TENANT_READERS = frozenset({"sre", "service"})


@functools.cache
def _grants(roles: frozenset[str]) -> frozenset[Access]:
    # Cached: asked on every call, and callers hold few distinct role sets.
    out: set[Access] = set()
    for role in roles:
        out |= ROLE_GRANTS.get(role, frozenset())
    return frozenset(out)


@dataclass(frozen=True)
class Rule:
    """The access an RPC needs."""

    access: Access


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    subject: str
    tenant: str
    roles: frozenset[str]
    # The token's exp claim (seconds since the epoch).
    expires_at: float = 0.0

    def grants(self) -> frozenset[Access]:
        return _grants(self.roles)

    def may_access_tenant(self, tenant: str, access: Access) -> bool:
        if self.tenant in (ALL_TENANTS, tenant):
            return True
        return access is Access.READ and bool(self.roles & CROSS_TENANT_READERS)


_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("speako_principal", default=None)


def current_principal() -> Principal:
    """The caller of the RPC being handled (set by the auth interceptor)."""
    principal = _principal.get()
    if principal is None:
        raise Unauthenticated("no authenticated caller in this context")
    return principal


def set_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    """Bind the caller for the current task (the interceptor and in-process callers use it)."""
    return _principal.set(principal)


def mint_token(secret: str, *, subject: str, tenant: str, roles: Iterable[str], ttl_s: float = 3600) -> str:
    """Sign a token with the platform's claims."""
    now = int(time.time())
    claims = {"sub": subject, "tenant": tenant, "roles": sorted(roles), "iat": now, "exp": now + int(ttl_s)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str) -> Principal:
    """Check signature, expiry and claims; Unauthenticated with the reason otherwise."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}, leeway=5)
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the token has expired", reason="TOKEN_EXPIRED") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"the token is not valid: {exc}", reason="TOKEN_INVALID") from None
    tenant, roles, subject = claims.get("tenant"), claims.get("roles"), claims.get("sub")
    # The subject is stored as creator/requester: keep it a short, printable string.
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_CHARS or not subject.isprintable():
        raise Unauthenticated(
            f"the token's sub claim must be a printable string of 1-{MAX_SUBJECT_CHARS} characters",
            reason="TOKEN_INVALID",
        )
    if not isinstance(tenant, str) or not (tenant == ALL_TENANTS or re.fullmatch(ID_PATTERN, tenant)):
        raise Unauthenticated("the token's tenant claim must be a tenant id or '*'", reason="TOKEN_INVALID")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthenticated("the token's roles claim must be a list of strings", reason="TOKEN_INVALID")
    return Principal(subject=subject, tenant=tenant, roles=frozenset(roles), expires_at=float(claims["exp"]))


def bearer_token(metadata: Mapping[str, Any]) -> str:
    """Extract the token of an ``authorization: Bearer <JWT>`` header."""
    value = metadata.get("authorization")
    if value is None:
        raise Unauthenticated(
            "missing authorization metadata: send 'authorization: Bearer <JWT>'", reason="TOKEN_MISSING"
        )
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    scheme, _, token = str(value).partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization metadata must be 'Bearer <JWT>'", reason="TOKEN_MALFORMED")
    return token.strip()


# Fields never searched for resource names: the config payload and free text, whose content may
# legitimately start with "tenants/" without naming anything.
_SKIP_FIELDS = frozenset({"config", "display_name", "title", "message", "description"})


def resource_tenants(request: Message, depth: int = 3) -> set[str]:
    """The tenants of every resource name a request carries (top level and nested messages)."""
    found: set[str] = set()
    for field, value in request.ListFields():
        if field.name in _SKIP_FIELDS:
            continue
        items = value if field.is_repeated else [value]
        if field.type == field.TYPE_STRING:
            for item in items:
                tenant = tenant_of(item)
                if tenant is not None:
                    found.add(tenant)
        elif field.type == field.TYPE_MESSAGE and depth > 0:
            for item in items:
                found |= resource_tenants(item, depth - 1)
    return found


class Authorizer:
    """Decides, for one service's policy, whether a call may proceed."""

    # Verified tokens kept, so a busy caller pays one HMAC and JSON decode per token, not per call.
    TOKEN_CACHE_SIZE = 4096

    def __init__(self, secret: str, policy: Mapping[str, Rule]) -> None:
        self._secret = secret
        self._policy = policy
        self._verified: dict[str, Principal] = {}

    @staticmethod
    def is_open(method: str) -> bool:
        return method.startswith(OPEN_METHOD_PREFIXES)

    def authenticate(self, metadata: Mapping[str, Any]) -> Principal:
        """The principal of a valid bearer token; Unauthenticated otherwise."""
        token = bearer_token(metadata)
        cached = self._verified.get(token)
        if cached is not None and cached.expires_at > time.time():
            return cached
        principal = verify_token(self._secret, token)
        if len(self._verified) >= self.TOKEN_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = principal
        return principal

    def authorize(self, method: str, principal: Principal, request: Message) -> None:
        """PermissionDenied unless the principal's roles and tenant allow this call."""
        rule = self._policy.get(method)
        if rule is None:
            # Fail closed: an RPC nobody classified is nobody's.
            raise PermissionDenied(f"{method} is not open to callers")
        if rule.access not in principal.grants():
            raise PermissionDenied(
                f"{method} needs {rule.access.value} access; the caller's roles "
                f"({', '.join(sorted(principal.roles)) or 'none'}) do not grant it",
                reason="MISSING_ROLE",
            )
        for tenant in resource_tenants(request):
            if not principal.may_access_tenant(tenant, rule.access):
                raise PermissionDenied(f"the caller may not access tenant {tenant!r}", reason="OTHER_TENANT")
