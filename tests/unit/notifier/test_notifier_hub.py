"""The bounded fan-out hub: order, isolation of slow subscribers, topics, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from services.notifier.domain.hub import FanoutHub, FeedItem, HubClosed, SubscriberOverflow


def item(position: int, *topics: str) -> FeedItem:
    return FeedItem(position=position, kind="job", topics=topics or ("t",), payload=position)


async def test_subscribers_receive_items_in_feed_order():
    hub = FanoutHub(buffer_size=100)
    subs = [hub.subscribe("t") for _ in range(3)]
    for p in range(1, 51):
        hub.publish(item(p))
    for sub in subs:
        got = [(await sub.get(1)).position for _ in range(50)]
        assert got == list(range(1, 51))


async def test_subscription_starts_at_the_hub_position_and_sees_only_later_items():
    hub = FanoutHub()
    hub.publish(item(5))
    sub = hub.subscribe("t")
    assert sub.start_position == 5
    hub.publish(item(6))
    assert (await sub.get(1)).position == 6
    assert await sub.get(0.01) is None


async def test_full_subscriber_is_cut_off_and_the_others_keep_everything():
    hub = FanoutHub(buffer_size=4)
    slow = hub.subscribe("t")
    fast = hub.subscribe("t")
    received = []
    for p in range(1, 21):
        hub.publish(item(p))
        received.append((await fast.get(1)).position)
    assert received == list(range(1, 21))
    assert slow.overflowed and slow.pending() <= 1  # buffer freed at once
    with pytest.raises(SubscriberOverflow):
        await slow.get(1)
    assert hub.subscriber_count() == 1 and hub.cut_off == 1


async def test_blocked_reader_learns_of_its_overflow():
    hub = FanoutHub(buffer_size=1)
    sub = hub.subscribe("t")
    hub.publish(item(1))
    hub.publish(item(2))  # overflow while nobody reads
    with pytest.raises(SubscriberOverflow):
        await sub.get(1)


async def test_topics_route_items_and_multi_topic_subscribers_get_each_item_once():
    hub = FanoutHub()
    tenant = hub.subscribe("tenants/a")
    agent = hub.subscribe("tenants/a/agents/x")
    both = hub.subscribe("tenants/a", "tenants/a/agents/x")
    other = hub.subscribe("tenants/b")
    hub.publish(item(1, "tenants/a", "tenants/a/agents/x"))
    hub.publish(item(2, "tenants/a", "tenants/a/agents/y"))
    assert [(await tenant.get(1)).position, (await tenant.get(1)).position] == [1, 2]
    assert (await agent.get(1)).position == 1 and await agent.get(0.01) is None
    assert [(await both.get(1)).position, (await both.get(1)).position] == [1, 2]
    assert await both.get(0.01) is None
    assert await other.get(0.01) is None


async def test_close_unsubscribes():
    hub = FanoutHub()
    sub = hub.subscribe("t", "u")
    sub.close()
    hub.publish(item(1, "t", "u"))
    assert hub.subscriber_count() == 0 and await sub.get(0.01) is None


async def test_hub_close_wakes_readers_and_refuses_new_subscribers():
    hub = FanoutHub()
    sub = hub.subscribe("t")
    reader = asyncio.create_task(sub.get(5))
    await asyncio.sleep(0)
    hub.close()
    with pytest.raises(HubClosed):
        await reader
    with pytest.raises(HubClosed):
        hub.subscribe("t")


def test_buffer_size_must_be_positive():
    with pytest.raises(ValueError):
        FanoutHub(buffer_size=0)
