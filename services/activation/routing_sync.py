"""Keeps the in-memory routing table in step with committed changes from every replica.

Fast path: each change NOTIFYs the agent's name at commit; the agent's snapshot is re-read and
applied. Fallback (a LISTEN connection can die silently): every poll interval the table's
fingerprint (agents, sum of revisions) is compared with the database's, and agents whose
committed revision is newer are re-read. All reads and applies happen in one task, in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from services.activation.domain.routing import RoutingTable
from services.activation.store import ROUTING_CHANNEL, ActivationStore

log = logging.getLogger("speako.activation.routing")

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class RoutingSync:
    """Loads the routing table and refreshes it from NOTIFY and polling."""

    def __init__(
        self,
        store: ActivationStore,
        table: RoutingTable,
        connect: Connect,
        *,
        poll_interval_s: float = 0.5,
        listener_check_s: float = 5.0,
    ) -> None:
        self._store = store
        self._table = table
        self._connect = connect
        self._poll_interval = poll_interval_s
        self._listener_check = listener_check_s
        self._dirty: set[str] = set()
        self._full_reload = False
        self._wake = asyncio.Event()

    async def load(self) -> None:
        """Replace the table with everything committed."""
        self._table.replace_all(await self._store.routing_snapshots())

    async def run(self) -> None:
        """Refresh until cancelled."""
        listener = asyncio.create_task(self._keep_listening())
        last_poll = time.monotonic()
        try:
            while True:
                timeout = max(0.0, self._poll_interval - (time.monotonic() - last_poll))
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except TimeoutError:
                    pass
                self._wake.clear()
                try:
                    if self._full_reload:
                        self._full_reload = False
                        self._dirty.clear()
                        await self.load()
                    elif self._dirty:
                        agents, self._dirty = sorted(self._dirty), set()
                        for snapshot in await self._store.routing_snapshots(agents):
                            self._table.apply(snapshot)
                    if time.monotonic() - last_poll >= self._poll_interval:
                        last_poll = time.monotonic()
                        await self._poll()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                    # The database is unreachable: keep serving the table held, retry soon.
                    log.warning("routing refresh failed, retrying: %s", exc)
                    self._full_reload = True
                    await asyncio.sleep(self._poll_interval)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _poll(self) -> None:
        if await self._store.routing_fingerprint() == self._table.fingerprint():
            return
        stale = self._table.stale_agents(await self._store.routing_revisions())
        if stale:
            log.info("routing poll found %d agents newer than held", len(stale))
            for snapshot in await self._store.routing_snapshots(stale):
                self._table.apply(snapshot)

    def _on_notify(self, _con: Any, _pid: int, _channel: str, payload: str) -> None:
        self._dirty.add(payload)
        self._wake.set()

    async def _keep_listening(self) -> None:
        while True:
            con: asyncpg.Connection | None = None
            try:
                con = await self._connect()
                await con.add_listener(ROUTING_CHANNEL, self._on_notify)
                # Changes committed while nobody listened are only found by a reload.
                self._full_reload = True
                self._wake.set()
                while not con.is_closed():
                    await asyncio.sleep(self._listener_check)
                    await asyncio.wait_for(con.fetchval("SELECT 1"), self._listener_check)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("routing LISTEN connection lost, reconnecting: %s", exc)
                await asyncio.sleep(min(1.0, self._listener_check))
            finally:
                if con is not None and not con.is_closed():
                    con.terminate()
