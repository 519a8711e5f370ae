"""Domain refusals; the servicer maps each to a gRPC status with details."""

from __future__ import annotations

from dataclasses import dataclass


class ActivationError(Exception):
    """Base of every rule the domain refuses."""


class InvalidBundle(ActivationError):
    """The bundle cannot be deployed: names or content hash do not hold together."""

    def __init__(self, message: str, field_violations: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.message = message
        self.field_violations = field_violations


class Superseded(ActivationError):
    """A newer version than the one offered is already live."""

    def __init__(self, agent: str, offered_version: int, live_version: int) -> None:
        super().__init__(
            f"{agent}/versions/{offered_version} is older than the live version {agent}/versions/{live_version}"
        )
        self.agent = agent
        self.offered_version = offered_version
        self.live_version = live_version


class DeployContended(ActivationError):
    """Concurrent deploys of one agent kept moving its live version; the deploy may be retried."""


class InvalidPhoneNumber(ActivationError):
    """A phone number is not in E.164 form."""

    def __init__(self, field: str, value: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


@dataclass(frozen=True)
class Violation:
    """One unmet precondition: (type, subject, description) as in google.rpc.PreconditionFailure."""

    type: str
    subject: str
    description: str


class PreconditionsUnmet(ActivationError):
    """The operation needs preconditions that do not hold; carries every unmet one."""

    def __init__(self, message: str, violations: list[Violation]) -> None:
        super().__init__(message)
        self.message = message
        self.violations = violations


class NumberTaken(ActivationError):
    """The phone number already belongs to another agent."""

    def __init__(self, number: str, owner: str | None) -> None:
        # owner is only disclosed within the caller's own tenant.
        who = f"agent {owner}" if owner else "another agent"
        super().__init__(f"phone number {number} is already assigned to {who}")
        self.number = number
        self.owner = owner


class NumberNotHeld(ActivationError):
    """The agent does not hold the phone number it is asked to release."""

    def __init__(self, agent: str, number: str) -> None:
        super().__init__(f"{agent} has no phone number {number}")
        self.agent = agent
        self.number = number


class UnknownNumber(ActivationError):
    """No agent answers the dialled number."""

    def __init__(self, number: str) -> None:
        super().__init__(f"no agent answers {number}")
        self.number = number


class UnknownCall(ActivationError):
    """No call has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} not found")
        self.name = name


class RequestIdReused(ActivationError):
    """A request_id was sent again with a different request."""

    def __init__(self, request_id: str, first_method: str) -> None:
        super().__init__(f"request_id {request_id} was already used for a different {first_method} request")
        self.request_id = request_id
