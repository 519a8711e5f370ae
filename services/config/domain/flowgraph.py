"""Graph analysis of a call flow: reachability from the start and from the exits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class FlowAnalysis:
    """Node ids grouped by what is wrong with them."""

    # Not reachable from the start node.
    orphans: frozenset[str]
    # Reachable from the start but cannot reach any exit (dead end, or a cycle with no way out).
    trapped: frozenset[str]


def analyse(start: str, edges: Mapping[str, Iterable[str]], exits: Iterable[str]) -> FlowAnalysis:
    """Return the orphans and trapped nodes of a graph.

    ``edges`` maps every node id to its successors (successors that are not keys are ignored:
    those dangling references are reported separately). ``exits`` are the nodes where a call
    ends (END_CALL or TRANSFER). Runs in O(nodes + edges).
    """
    succ: dict[str, list[str]] = {node: [n for n in nxt if n in edges] for node, nxt in edges.items()}

    reachable: set[str] = set()
    if start in succ:
        stack = [start]
        reachable.add(start)
        while stack:
            for successor in succ[stack.pop()]:
                if successor not in reachable:
                    reachable.add(successor)
                    stack.append(successor)

    # Walk the reversed graph from the exits: whatever it reaches can end the call.
    pred: dict[str, list[str]] = {node: [] for node in succ}
    for node, nxt in succ.items():
        for n in nxt:
            pred[n].append(node)
    can_exit: set[str] = {e for e in exits if e in succ}
    stack = list(can_exit)
    while stack:
        for p in pred[stack.pop()]:
            if p not in can_exit:
                can_exit.add(p)
                stack.append(p)

    orphans = frozenset(node for node in succ if node not in reachable)
    trapped = frozenset(node for node in reachable if node not in can_exit)
    return FlowAnalysis(orphans=orphans, trapped=trapped)
