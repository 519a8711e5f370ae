"""In-process fan-out of feed items to many subscribers through bounded per-subscriber buffers.

One feed tailer per process publishes every new feed item once; the hub hands it to the
subscribers of the item's topics without waiting on any of them. A subscriber whose buffer is
full is cut off (it can resume by token) so a slow reader never slows the others or grows memory.
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any


class SubscriberOverflow(Exception):
    """The subscriber fell too far behind and was cut off."""


class HubClosed(Exception):
    """The hub is shutting down; the subscriber should end its stream."""


@dataclass(frozen=True)
class FeedItem:
    """One durable feed entry: its position, the topics it concerns and its decoded payload."""

    position: int
    kind: str
    topics: tuple[Hashable, ...]
    payload: Any = field(compare=False)
    # Per-item memo shared by all subscribers (e.g. the serialized update, built once for all).
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


class Subscription:
    """A subscriber's bounded buffer; read it with ``get``, release it with ``close``."""

    def __init__(self, hub: FanoutHub, topics: tuple[Hashable, ...], maxsize: int, start_position: int) -> None:
        self._hub = hub
        self.topics = topics
        # Everything at or before this position was already in the store when the subscription began.
        self.start_position = start_position
        self._maxsize = maxsize
        self._items: collections.deque[FeedItem] = collections.deque()
        # The reader blocked in get(), if any, and when it stops waiting (loop time).
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = math.inf
        self.overflowed = False
        self.closed = False
        self.peak = 0  # deepest the buffer has been

    def offer(self, item: FeedItem) -> bool:
        """Buffer an item without waiting; False (and the subscriber is cut off) when full."""
        if self.closed or self.overflowed:
            return False
        if len(self._items) >= self._maxsize:
            self.overflowed = True
            # Free the buffer at once; the reader only needs to learn that it was cut off.
            self._drain()
            self._wake()
            return False
        self._items.append(item)
        if len(self._items) > self.peak:
            self.peak = len(self._items)
        self._wake()
        return True

    def _drain(self) -> None:
        self._items.clear()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pending(self) -> int:
        """Items buffered and not yet read."""
        return len(self._items)

    async def get(self, wait_s: float | None = None) -> FeedItem | None:
        """Next item in feed order; None after about ``wait_s`` seconds without one.

        Raises SubscriberOverflow once cut off and HubClosed when the hub shuts down. The wait is
        timed by the hub's one ticker, not a timer per call: a live update then costs a list
        append and one future, which matters with thousands of watchers on one loop.
        """
        self._check()
        if self._items:  # no waiting needed when the reader is behind
            return self._items.popleft()
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._deadline = math.inf if wait_s is None else loop.time() + wait_s
        if wait_s is not None:
            self._hub._time(self)
        try:
            await self._waiter
        finally:
            self._waiter = None
            self._deadline = math.inf
        self._check()
        return self._items.popleft() if self._items else None

    def _expire(self, now: float) -> bool:
        """Wake the reader if its wait is over; True when it was (or nobody waits)."""
        if self._waiter is None or self._waiter.done():
            return True
        if now >= self._deadline:
            self._waiter.set_result(None)
            return True
        return False

    def _check(self) -> None:
        if self.overflowed:
            raise SubscriberOverflow(f"subscriber of {self.topics!r} fell behind and was cut off")
        if self.closed:
            raise HubClosed("the service is shutting down")

    def close(self) -> None:
        """Unsubscribe; idempotent."""
        self._hub._remove(self)
        self._drain()


class FanoutHub:
    """Routes feed items to subscribers by topic, in feed order, never blocking the publisher."""

    def __init__(self, buffer_size: int = 256, tick_s: float = 0.05) -> None:
        if buffer_size < 1:
            raise ValueError("buffer_size must be >= 1")
        self.buffer_size = buffer_size
        # Timed waits (heartbeats) end on the ticker's next tick after their deadline.
        self._tick_s = tick_s
        self._timed: set[Subscription] = set()
        self._ticker: asyncio.TimerHandle | None = None
        self._subscribers: dict[Hashable, set[Subscription]] = {}
        # Highest position published so far: every item up to it is committed in the store.
        self.position = 0
        self.cut_off = 0
        self._closed = False

    def subscribe(self, *topics: Hashable, buffer_size: int | None = None) -> Subscription:
        """Register a subscriber of ``topics``; it receives items published after this call."""
        if self._closed:
            raise HubClosed("the service is shutting down")
        if not topics:
            raise ValueError("subscribe needs at least one topic")
        sub = Subscription(self, tuple(topics), buffer_size or self.buffer_size, self.position)
        for topic in sub.topics:
            self._subscribers.setdefault(topic, set()).add(sub)
        return sub

    def publish(self, item: FeedItem) -> None:
        """Hand ``item`` to every subscriber of its topics once; cut off the ones that are full."""
        if item.position > self.position:
            self.position = item.position
        offered: set[Subscription] = set()
        for topic in item.topics:
            subs = self._subscribers.get(topic)
            if not subs:
                continue
            for sub in list(subs):
                if sub in offered:
                    continue
                offered.add(sub)
                if not sub.offer(item):
                    self.cut_off += 1
                    self._remove(sub)

    def _time(self, sub: Subscription) -> None:
        self._timed.add(sub)
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().call_later(self._tick_s, self._tick)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._timed = {sub for sub in self._timed if not sub._expire(now)}
        self._ticker = loop.call_later(self._tick_s, self._tick) if self._timed else None

    def advance(self, position: int) -> None:
        """Record that the feed is read up to ``position`` even if no item was published."""
        if position > self.position:
            self.position = position

    def subscriber_count(self) -> int:
        """Subscribers currently registered."""
        return len({sub for subs in self._subscribers.values() for sub in subs})

    def _remove(self, sub: Subscription) -> None:
        for topic in sub.topics:
            subs = self._subscribers.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[topic]

    def close(self) -> None:
        """End every subscription (HubClosed) and refuse new ones."""
        self._closed = True
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                sub.closed = True
                sub._drain()
                sub._wake()
        self._subscribers.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self._timed.clear()
