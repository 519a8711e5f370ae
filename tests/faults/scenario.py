"""Helpers shared by the scenarios: a checker per scenario with its own tenant."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chassis import auth
from tests.conftest import TEST_SECRET
from tests.faults.checker import Checker
from tests.faults.conftest import FaultPlatform


def new_tenant(label: str) -> str:
    """A tenant id of its own for one scenario."""
    return f"f-{label}-{uuid.uuid4().hex[:6]}"


@asynccontextmanager
async def checking(fp: FaultPlatform, label: str, *, agents: int = 6, settle_s: float = 75.0) -> AsyncIterator[Checker]:
    """A started checker on a fresh tenant (observers running), closed afterwards."""
    tenant = new_tenant(label)
    tok = auth.mint_token(TEST_SECRET, subject=f"faults@{tenant}", tenant=tenant, roles=["admin"], ttl_s=3600)
    checker = Checker(fp.addrs, tok, tenant, agents=agents, settle_s=settle_s)
    try:
        await checker.start()
        yield checker
    finally:
        await checker.close()
