"""The feed tailer without servers: own commits are published without a feed read, in order."""

from __future__ import annotations

from services.notifier.domain.hub import FanoutHub
from services.notifier.feed import FeedTailer
from services.notifier.store import FeedHead, FeedRow
from speako.config.v1 import resources_pb2

TENANT = "tenants/acme"
AGENT = f"{TENANT}/agents/front-desk"


def row(position: int) -> FeedRow:
    name = f"{AGENT}/publishJobs/{position}"
    payload = resources_pb2.PublishJob(name=name).SerializeToString()
    return FeedRow(position, "job", TENANT, AGENT, name, payload)


class FakeStore:
    def __init__(self, rows: list[FeedRow]) -> None:
        self.rows = rows
        self.reads = 0

    async def head(self) -> FeedHead:
        return FeedHead("e", 0, 0)

    async def read_feed(self, after: int, limit: int) -> list[FeedRow]:
        self.reads += 1
        return [r for r in self.rows if r.position > after][:limit]


async def tailer_with(rows: list[FeedRow]) -> tuple[FeedTailer, FakeStore, FanoutHub]:
    store = FakeStore(rows)
    hub = FanoutHub()
    tailer = FeedTailer(store, hub, listen=None)  # type: ignore[arg-type]
    await tailer.prime()
    return tailer, store, hub


async def test_rows_handed_over_are_published_without_reading_the_feed():
    tailer, store, hub = await tailer_with([row(1), row(2)])
    sub = hub.subscribe(AGENT)
    tailer.committed([row(1), row(2)])
    await tailer.catch_up()
    assert [(await sub.get(1)).position for _ in range(2)] == [1, 2]
    assert store.reads == 0
    # The NOTIFY of that same commit names a position already published: no read either.
    tailer._on_notify("2")
    await tailer.catch_up()
    assert store.reads == 0


async def test_a_gap_before_handed_rows_is_filled_from_the_store_in_order():
    # Position 1 was committed by another replica; this process committed 2 and 3.
    tailer, store, hub = await tailer_with([row(1), row(2), row(3)])
    sub = hub.subscribe(AGENT)
    tailer.committed([row(2), row(3)])
    await tailer.catch_up()
    assert [(await sub.get(1)).position for _ in range(3)] == [1, 2, 3]
    assert store.reads == 1
    assert tailer.position == 3


async def test_a_notify_beyond_the_position_reads_the_feed():
    tailer, store, hub = await tailer_with([row(1)])
    sub = hub.subscribe(AGENT)
    tailer._on_notify("1")
    await tailer.catch_up()
    assert (await sub.get(1)).position == 1
    assert store.reads == 1


async def test_the_notify_of_an_own_commit_waits_for_its_hand_over_instead_of_reading_the_feed():
    tailer, store, hub = await tailer_with([row(1)])
    sub = hub.subscribe(AGENT)
    tailer.committing()
    tailer._on_notify("1")  # the commit's NOTIFY can arrive before the writer hands its rows over
    await tailer.catch_up()
    assert store.reads == 0
    tailer.committed([row(1)])
    await tailer.catch_up()
    assert (await sub.get(1)).position == 1
    assert store.reads == 0


async def test_another_replicas_rows_are_read_once_the_own_commit_is_over():
    tailer, store, hub = await tailer_with([row(1), row(2)])
    sub = hub.subscribe(AGENT)
    tailer.committing()
    tailer._on_notify("1")  # another replica committed position 1 meanwhile
    await tailer.catch_up()
    tailer.committed([row(2)])
    await tailer.catch_up()
    assert [(await sub.get(1)).position for _ in range(2)] == [1, 2]
    assert store.reads == 1


async def test_a_failed_own_commit_does_not_hold_back_the_read():
    tailer, store, hub = await tailer_with([row(1)])
    sub = hub.subscribe(AGENT)
    tailer.committing()
    tailer._on_notify("1")
    await tailer.catch_up()
    tailer.committed([])
    await tailer.catch_up()
    assert (await sub.get(1)).position == 1
    assert store.reads == 1


async def test_the_poll_reads_the_feed_even_during_an_own_commit():
    tailer, store, hub = await tailer_with([row(1)])
    sub = hub.subscribe(AGENT)
    tailer.committing()
    tailer.wake()  # the polling fallback (or a LISTEN reconnect)
    await tailer.catch_up()
    assert (await sub.get(1)).position == 1
    assert store.reads == 1


async def test_a_failed_feed_read_is_retried_at_the_next_catch_up():
    tailer, store, hub = await tailer_with([row(1)])
    sub = hub.subscribe(AGENT)
    real_read = store.read_feed

    async def broken(after: int, limit: int) -> list[FeedRow]:
        raise OSError("connection reset")

    store.read_feed = broken  # type: ignore[method-assign]
    tailer._on_notify("1")
    try:
        await tailer.catch_up()
    except OSError:
        pass
    store.read_feed = real_read  # type: ignore[method-assign]
    # No new NOTIFY and no poll: the row the failed read missed is still read.
    await tailer.catch_up()
    assert (await sub.get(1)).position == 1
    assert tailer.position == 1
