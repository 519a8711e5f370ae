"""The in-memory routing table RouteCall answers from: number -> agent, state, live version."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.activation.domain.lifecycle import AgentState


@dataclass(frozen=True, slots=True)
class Route:
    """Where a dialled number goes right now."""

    agent: str
    state: AgentState
    live_version: str | None
    bundle_sha256: str | None


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    """One agent's routing facts as committed in the database, with its revision.

    `rev` grows with every change to the agent's state, live version or numbers.
    """

    agent: str
    state: AgentState
    live_version: str | None
    bundle_sha256: str | None
    phone_numbers: tuple[str, ...]
    rev: int

    def route(self) -> Route:
        """The route every number of this agent leads to."""
        return Route(self.agent, self.state, self.live_version, self.bundle_sha256)


class RoutingTable:
    """Numbers to routes, updated by whole-agent snapshots read after each commit.

    Snapshots must be applied in the order they were read: a later read is never older, so
    applying it wins. A number moved between agents is taken by whichever agent's snapshot
    lists it last, and dropped from an agent's snapshot only if it still points there.
    """

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._agents: dict[str, AgentSnapshot] = {}
        self._rev_sum = 0

    def lookup(self, number: str) -> Route | None:
        """Return the route for a dialled number, or None if no agent has it."""
        return self._routes.get(number)

    def apply(self, snapshot: AgentSnapshot) -> bool:
        """Apply one agent's fresh snapshot; return False if it is older than the one held."""
        old = self._agents.get(snapshot.agent)
        if old is not None and snapshot.rev < old.rev:
            return False
        if old is not None:
            for number in old.phone_numbers:
                current = self._routes.get(number)
                if current is not None and current.agent == snapshot.agent:
                    del self._routes[number]
            self._rev_sum -= old.rev
        route = snapshot.route()
        for number in snapshot.phone_numbers:
            self._routes[number] = route
        self._agents[snapshot.agent] = snapshot
        self._rev_sum += snapshot.rev
        return True

    def replace_all(self, snapshots: Iterable[AgentSnapshot]) -> None:
        """Replace the whole table with a consistent set of snapshots (a full reload)."""
        routes: dict[str, Route] = {}
        agents: dict[str, AgentSnapshot] = {}
        for snapshot in snapshots:
            agents[snapshot.agent] = snapshot
            route = snapshot.route()
            for number in snapshot.phone_numbers:
                routes[number] = route
        # Swap in one step so a lookup never sees a half-built table.
        self._routes, self._agents = routes, agents
        self._rev_sum = sum(s.rev for s in agents.values())

    def fingerprint(self) -> tuple[int, int]:
        """(agents held, sum of their revisions): equal to the database's when in step."""
        return len(self._agents), self._rev_sum

    def revisions(self) -> dict[str, int]:
        """Revision held per agent."""
        return {name: s.rev for name, s in self._agents.items()}

    def stale_agents(self, committed: dict[str, int]) -> list[str]:
        """Agents whose committed revision is newer than the one held (or unknown here)."""
        held = self._agents
        return [name for name, rev in committed.items() if name not in held or held[name].rev < rev]

    def __len__(self) -> int:
        return len(self._routes)
