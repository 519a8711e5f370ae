"""Resource names (Google AIP style), parsed in one place.

Every ``parse`` raises ``InvalidArgument`` naming the request field, so a malformed name is always
a precise INVALID_ARGUMENT, never a crash deeper down.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import ClassVar, Self

from chassis.errors import InvalidArgument

ID_PATTERN = r"[a-z][a-z0-9-]{0,62}"
ID_RE = re.compile(rf"^{ID_PATTERN}$")
_TENANT = re.compile(rf"^tenants/({ID_PATTERN})$")
_AGENT = re.compile(rf"^tenants/({ID_PATTERN})/agents/({ID_PATTERN})$")
_DRAFT = re.compile(rf"^tenants/({ID_PATTERN})/agents/({ID_PATTERN})/draft$")
_VERSION = re.compile(rf"^tenants/({ID_PATTERN})/agents/({ID_PATTERN})/versions/([1-9][0-9]{{0,17}})$")
_JOB = re.compile(rf"^tenants/({ID_PATTERN})/agents/({ID_PATTERN})/publishJobs/([0-9a-f-]{{36}})$")
_NOTIFICATION = re.compile(rf"^tenants/({ID_PATTERN})/notifications/([a-z0-9-]{{1,64}})$")
_NOTICE = re.compile(r"^notices/([a-z0-9-]{1,64})$")
_CALL = re.compile(r"^calls/([a-z0-9-]{1,64})$")
_TENANT_PREFIX = re.compile(rf"^tenants/({ID_PATTERN})(/|$)")


def _invalid(field: str, value: str, expected: str) -> InvalidArgument:
    shown = value if len(value) <= 200 else value[:200] + "..."
    return InvalidArgument(
        f"{field} {shown!r} is not a valid resource name; expected {expected}",
        [(field, f"expected {expected}")],
    )


def check_id(value: str, field: str) -> str:
    """Validate a tenant or agent id (^[a-z][a-z0-9-]{0,62}$)."""
    if not ID_RE.fullmatch(value):
        raise InvalidArgument(
            f"{field} {value[:100]!r} is not a valid id: use 1-63 lowercase letters, digits or '-', "
            "starting with a letter",
            [(field, "must match ^[a-z][a-z0-9-]{0,62}$")],
        )
    return value


def tenant_of(value: str) -> str | None:
    """Return the tenant id a resource name belongs to, or None for tenant-less names."""
    m = _TENANT_PREFIX.match(value)
    return m.group(1) if m else None


class _ResourceName:
    """Parsing shared by every name: one regex, its groups become the fields."""

    PATTERN: ClassVar[str]
    _REGEX: ClassVar[re.Pattern[str]]
    _EXPECTED: ClassVar[str] = ""

    @classmethod
    def parse(cls, value: str, field: str = "name") -> Self:
        m = cls._REGEX.fullmatch(value)
        if not m:
            raise _invalid(field, value, cls._EXPECTED or cls.PATTERN)
        try:
            return cls._from_groups(*m.groups())
        except ValueError:
            raise _invalid(field, value, cls._EXPECTED or cls.PATTERN) from None

    @classmethod
    def _from_groups(cls, *groups: str) -> Self:
        return cls(*groups)


@dataclass(frozen=True)
class TenantName(_ResourceName):
    tenant: str
    PATTERN: ClassVar[str] = "tenants/{tenant}"
    _REGEX: ClassVar[re.Pattern[str]] = _TENANT

    @classmethod
    def parse(cls, value: str, field: str = "parent") -> Self:
        return super().parse(value, field)

    def __str__(self) -> str:
        return f"tenants/{self.tenant}"


@dataclass(frozen=True)
class AgentName(_ResourceName):
    tenant: str
    agent: str
    PATTERN: ClassVar[str] = "tenants/{tenant}/agents/{agent}"
    _REGEX: ClassVar[re.Pattern[str]] = _AGENT

    def __str__(self) -> str:
        return f"tenants/{self.tenant}/agents/{self.agent}"

    @property
    def parent(self) -> TenantName:
        return TenantName(self.tenant)

    @property
    def draft(self) -> DraftName:
        return DraftName(self.tenant, self.agent)

    def version(self, number: int) -> VersionName:
        return VersionName(self.tenant, self.agent, number)

    def publish_job(self, job_id: str) -> PublishJobName:
        return PublishJobName(self.tenant, self.agent, job_id)


@dataclass(frozen=True)
class DraftName(_ResourceName):
    tenant: str
    agent: str
    PATTERN: ClassVar[str] = "tenants/{tenant}/agents/{agent}/draft"
    _REGEX: ClassVar[re.Pattern[str]] = _DRAFT

    def __str__(self) -> str:
        return f"tenants/{self.tenant}/agents/{self.agent}/draft"

    @property
    def agent_name(self) -> AgentName:
        return AgentName(self.tenant, self.agent)


@dataclass(frozen=True)
class VersionName(_ResourceName):
    tenant: str
    agent: str
    number: int
    PATTERN: ClassVar[str] = "tenants/{tenant}/agents/{agent}/versions/{number}"
    _REGEX: ClassVar[re.Pattern[str]] = _VERSION
    _EXPECTED: ClassVar[str] = PATTERN + " with number >= 1"

    @classmethod
    def _from_groups(cls, *groups: str) -> Self:
        tenant, agent, number = groups
        return cls(tenant, agent, int(number))

    def __str__(self) -> str:
        return f"tenants/{self.tenant}/agents/{self.agent}/versions/{self.number}"

    @property
    def agent_name(self) -> AgentName:
        return AgentName(self.tenant, self.agent)


@dataclass(frozen=True)
class PublishJobName(_ResourceName):
    tenant: str
    agent: str
    job_id: str
    PATTERN: ClassVar[str] = "tenants/{tenant}/agents/{agent}/publishJobs/{uuid}"
    _REGEX: ClassVar[re.Pattern[str]] = _JOB

    @classmethod
    def _from_groups(cls, *groups: str) -> Self:
        tenant, agent, job_id = groups
        return cls(tenant, agent, str(uuid.UUID(job_id)))  # ValueError: not a UUID

    def __str__(self) -> str:
        return f"tenants/{self.tenant}/agents/{self.agent}/publishJobs/{self.job_id}"

    @property
    def agent_name(self) -> AgentName:
        return AgentName(self.tenant, self.agent)


@dataclass(frozen=True)
class NotificationName(_ResourceName):
    tenant: str
    notification_id: str
    PATTERN: ClassVar[str] = "tenants/{tenant}/notifications/{id}"
    _REGEX: ClassVar[re.Pattern[str]] = _NOTIFICATION

    def __str__(self) -> str:
        return f"tenants/{self.tenant}/notifications/{self.notification_id}"


@dataclass(frozen=True)
class NoticeName(_ResourceName):
    notice_id: str
    PATTERN: ClassVar[str] = "notices/{id}"
    _REGEX: ClassVar[re.Pattern[str]] = _NOTICE

    def __str__(self) -> str:
        return f"notices/{self.notice_id}"


@dataclass(frozen=True)
class CallName(_ResourceName):
    call_id: str
    PATTERN: ClassVar[str] = "calls/{call_id}"
    _REGEX: ClassVar[re.Pattern[str]] = _CALL

    def __str__(self) -> str:
        return f"calls/{self.call_id}"


def parse_tenant_or_agent(value: str, field: str = "parent") -> TenantName | AgentName:
    """Parse a parent that may be a tenant or one of its agents."""
    if _AGENT.fullmatch(value):
        return AgentName.parse(value, field)
    if _TENANT.fullmatch(value):
        return TenantName.parse(value, field)
    raise _invalid(field, value, "tenants/{tenant} or tenants/{tenant}/agents/{agent}")
