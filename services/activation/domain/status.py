"""Read models of the activation domain: an agent's status and a call."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from services.activation.domain.lifecycle import AgentState


@dataclass(frozen=True)
class AgentStatusView:
    """What GetAgentStatus answers for one agent."""

    name: str
    state: AgentState
    live_version: str | None
    phone_numbers: tuple[str, ...]
    # (version name, calls in progress), by version number ascending.
    active_calls_by_version: tuple[tuple[str, int], ...]
    update_time: datetime | None

    @property
    def active_calls(self) -> int:
        """Calls in progress over all versions."""
        return sum(n for _, n in self.active_calls_by_version)

    def to_json(self) -> str:
        """Serialise (kept as the first answer of an idempotent request)."""
        return json.dumps(
            {
                "name": self.name,
                "state": self.state.value,
                "live_version": self.live_version,
                "phone_numbers": list(self.phone_numbers),
                "active_calls_by_version": [list(p) for p in self.active_calls_by_version],
                "update_time": self.update_time.isoformat() if self.update_time else None,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> AgentStatusView:
        """Inverse of to_json."""
        data = json.loads(raw)
        return cls(
            name=data["name"],
            state=AgentState(data["state"]),
            live_version=data["live_version"],
            phone_numbers=tuple(data["phone_numbers"]),
            active_calls_by_version=tuple((v, int(n)) for v, n in data["active_calls_by_version"]),
            update_time=datetime.fromisoformat(data["update_time"]) if data["update_time"] else None,
        )


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A call and the version pinned to it when it was routed."""

    call_id: uuid.UUID
    agent: str
    version: str
    bundle_sha256: str
    called_number: str
    caller_number: str
    start_time: datetime
    end_time: datetime | None = None

    @property
    def name(self) -> str:
        """calls/{call_id}"""
        return f"calls/{self.call_id}"


@dataclass(frozen=True)
class DeploymentView:
    """A version accepted by the runtime and the agent's live version after it."""

    agent: str
    version: str
    bundle_sha256: str
    deploy_time: datetime
    live_version: str
