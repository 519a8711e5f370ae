"""The agent lifecycle: DRAFT -> ACTIVE <-> INACTIVE."""

from __future__ import annotations

import enum

from services.activation.domain.errors import PreconditionsUnmet, Violation


class AgentState(enum.Enum):
    """Lifecycle state of an agent as the runtime sees it."""

    DRAFT = "DRAFT"  # never activated
    ACTIVE = "ACTIVE"  # receiving calls
    INACTIVE = "INACTIVE"  # was active, routes no new calls


def activation_target(current: AgentState) -> AgentState | None:
    """Return the state ActivateAgent moves to, or None when the agent is already active."""
    if current is AgentState.ACTIVE:
        return None
    return AgentState.ACTIVE


def deactivation_target(agent: str, current: AgentState) -> AgentState | None:
    """Return the state DeactivateAgent moves to, None when already inactive; refuse a draft."""
    if current is AgentState.INACTIVE:
        return None
    if current is AgentState.DRAFT:
        raise PreconditionsUnmet(
            f"{agent} has never been active",
            [Violation("STATE", agent, "only an ACTIVE agent can be deactivated; this one is DRAFT")],
        )
    return AgentState.INACTIVE


def routes_calls(state: AgentState) -> bool:
    """Whether new calls may be routed to an agent in this state."""
    return state is AgentState.ACTIVE
