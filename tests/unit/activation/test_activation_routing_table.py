"""The in-memory routing table and its refresh rules."""

from __future__ import annotations

from services.activation.domain.lifecycle import AgentState
from services.activation.domain.routing import AgentSnapshot, Route, RoutingTable

A = "tenants/acme/agents/a"
B = "tenants/globex/agents/b"
N1, N2, N3 = "+14155550001", "+14155550002", "+14155550003"


def snap(agent, numbers, rev, state=AgentState.ACTIVE, live=1):
    return AgentSnapshot(agent, state, f"{agent}/versions/{live}", f"{live:064d}", tuple(numbers), rev)


def test_lookup_unknown_number_is_none():
    assert RoutingTable().lookup(N1) is None


def test_replace_all_routes_every_number():
    table = RoutingTable()
    table.replace_all([snap(A, [N1, N2], 3), snap(B, [N3], 2)])
    assert table.lookup(N1) == Route(A, AgentState.ACTIVE, f"{A}/versions/1", f"{1:064d}")
    assert table.lookup(N3).agent == B
    assert len(table) == 3
    assert table.fingerprint() == (2, 5)


def test_apply_replaces_an_agents_routes_and_drops_released_numbers():
    table = RoutingTable()
    table.replace_all([snap(A, [N1, N2], 1)])
    assert table.apply(snap(A, [N2], 2, state=AgentState.INACTIVE, live=4))
    assert table.lookup(N1) is None
    assert table.lookup(N2) == Route(A, AgentState.INACTIVE, f"{A}/versions/4", f"{4:064d}")
    assert table.fingerprint() == (1, 2)


def test_older_snapshot_is_ignored():
    table = RoutingTable()
    table.apply(snap(A, [N1], 5, live=3))
    assert not table.apply(snap(A, [N1], 4, live=2))
    assert table.lookup(N1).live_version == f"{A}/versions/3"


def test_number_moved_between_agents_follows_the_later_snapshot():
    table = RoutingTable()
    table.replace_all([snap(A, [N1], 1), snap(B, [], 1)])
    # B's snapshot (after the move) arrives before A's release: B takes the number.
    table.apply(snap(B, [N1], 2))
    assert table.lookup(N1).agent == B
    # A's snapshot without the number must not remove B's route.
    table.apply(snap(A, [], 2))
    assert table.lookup(N1).agent == B


def test_stale_agents_lists_newer_and_unknown_agents():
    table = RoutingTable()
    table.replace_all([snap(A, [N1], 3), snap(B, [N3], 2)])
    assert table.stale_agents({A: 3, B: 4, "tenants/x/agents/c": 1}) == [B, "tenants/x/agents/c"]
    assert table.revisions() == {A: 3, B: 2}
