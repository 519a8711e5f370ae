"""Access rules of the publisher's RPCs: it serves only health and reflection, which are open."""

from __future__ import annotations

from collections.abc import Mapping

from chassis.auth import Rule

POLICY: Mapping[str, Rule] = {}
