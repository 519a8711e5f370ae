"""The feed tailer: one per process, reads new feed rows in position order and fans them out.

Woken by LISTEN/NOTIFY (sent by the writing transaction at commit) with a polling fallback,
because a LISTEN connection can die silently. Positions commit in order (see store._append), so
reading ``position > last`` never skips a row.

Rows this process's intake just committed are handed over (``committed``) and published without
reading them back, as long as they continue the feed with no gap; a NOTIFY whose position the
tailer already has is ignored, so an own commit costs no feed read at all.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any

import asyncpg

from services.notifier.domain.hub import FanoutHub, FeedItem
from services.notifier.store import FEED_CHANNEL, FeedRow, NotifierStore
from speako.config.v1 import resources_pb2
from speako.notifier.v1 import resources_pb2 as notifier_pb2

log = logging.getLogger("speako.notifier.feed")

NOTICES_TOPIC: Hashable = ("notices",)


def notifications_topic(tenant: str) -> Hashable:
    """Hub topic of a tenant's System notifications and read-state changes."""
    return ("notifications", tenant)


def to_item(row: FeedRow) -> FeedItem:
    """Decode a feed row once, for all subscribers; job topics are tenant, agent and job names."""
    payload: Any
    topics: tuple[Hashable, ...]
    if row.kind == "job":
        payload = resources_pb2.PublishJob.FromString(row.payload)
        topics = (row.tenant, row.agent, row.subject)
    elif row.kind == "notification":
        payload = notifier_pb2.Notification.FromString(row.payload)
        topics = (notifications_topic(row.tenant or ""),)
    else:
        payload = notifier_pb2.MaintenanceNotice.FromString(row.payload)
        topics = (NOTICES_TOPIC,)
    return FeedItem(position=row.position, kind=row.kind, topics=topics, payload=payload)


class FeedTailer:
    """Background task: feed rows -> hub, in order, exactly once per process."""

    def __init__(
        self,
        store: NotifierStore,
        hub: FanoutHub,
        listen: Callable[[], Awaitable[asyncpg.Connection]],
        *,
        poll_interval_s: float = 1.0,
        batch_size: int = 500,
    ) -> None:
        self._store = store
        self._hub = hub
        self._listen = listen
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        # Rows committed by this process's intake, not yet published.
        self._handed: list[FeedRow] = []
        # The feed may hold rows up to here that only a store read finds (NOTIFY, poll, a gap).
        self._unread_through: float = 0
        # Commits of this process's intake in progress: their rows are about to be handed over.
        self._committing = 0
        self.epoch = ""
        self.position = 0

    async def prime(self) -> None:
        """Start at the current end of the feed (history is served by replay from the store)."""
        head = await self._store.head()
        self.epoch = head.epoch
        self.position = head.last_position
        self._hub.advance(head.last_position)

    def wake(self) -> None:
        """Read the feed now instead of at the next poll."""
        self._unread_through = math.inf
        self._wake.set()

    def committing(self) -> None:
        """This process's intake is committing; ``committed`` follows, whatever the outcome."""
        self._committing += 1

    def committed(self, rows: Sequence[FeedRow]) -> None:
        """Rows this process just committed (none if it failed): publish them without reading them back."""
        self._committing = max(0, self._committing - 1)
        self._handed.extend(rows)
        self._wake.set()

    def _on_notify(self, payload: str) -> None:
        # The payload is the last position of the committing transaction (see store._append).
        try:
            through: float = int(payload)
        except ValueError:
            through = math.inf
        if through > self.position:
            self._unread_through = max(self._unread_through, through)
            self._wake.set()

    async def run(self) -> None:
        """Tail the feed until cancelled."""
        listener = asyncio.create_task(self._listen_loop(), name="notifier-feed-listen")
        try:
            while True:
                try:
                    await self.catch_up()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("feed read failed (%s); retrying", exc)
                try:
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)
                except TimeoutError:
                    self._unread_through = math.inf  # the polling fallback reads the store
                self._wake.clear()
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def catch_up(self) -> None:
        """Publish the rows handed over, then read the store if it may hold rows after them."""
        while self._handed:
            handed, self._handed = self._handed, []
            for row in handed:
                if row.position > self.position + 1:
                    # Another transaction's rows come first: the store has them (and these).
                    self._unread_through = max(self._unread_through, row.position)
                    break
                if row.position == self.position + 1:
                    await self._publish(row)
        if self._unread_through <= self.position:
            return
        if self._committing and self._unread_through != math.inf:
            # A NOTIFY, most likely of the commit this process is finishing: ``committed`` hands its
            # rows over in a moment, and reading them first would put a statement per event on the
            # way to the watchers. Whatever is still missing then (another replica's) is read.
            return
        # Cleared before reading, so that a NOTIFY during the read asks for another one.
        unread_through, self._unread_through = self._unread_through, 0
        try:
            while True:
                rows = await self._store.read_feed(self.position, self._batch_size)
                for row in rows:
                    await self._publish(row)
                if len(rows) < self._batch_size:
                    return
        except BaseException:
            # Still unread: read again at the next wake-up, not only at the next poll.
            self._unread_through = max(self._unread_through, unread_through)
            raise

    async def _publish(self, row: FeedRow) -> None:
        self._hub.publish(to_item(row))
        self.position = row.position
        # Let readers take the item before the next: a burst is not a slow reader.
        await asyncio.sleep(0)

    async def _listen_loop(self) -> None:
        while True:
            con: asyncpg.Connection | None = None
            try:
                con = await self._listen()
                lost = asyncio.Event()
                con.add_termination_listener(lambda _c, lost=lost: lost.set())
                await con.add_listener(FEED_CHANNEL, lambda _c, _pid, _ch, payload: self._on_notify(payload))
                # Rows committed while we were not listening are found by this read.
                self.wake()
                while not lost.is_set() and not con.is_closed():
                    try:
                        await asyncio.wait_for(lost.wait(), 5.0)
                    except TimeoutError:
                        # A silently dead connection only shows when used.
                        await asyncio.wait_for(con.execute("SELECT 1"), 5.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reconnect on any failure; polling covers the gap
                log.warning("feed LISTEN connection lost (%s); reconnecting", exc)
            finally:
                if con is not None and not con.is_closed():
                    con.terminate()
            await asyncio.sleep(self._poll_interval_s)
