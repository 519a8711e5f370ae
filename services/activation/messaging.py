"""Broker adapter: the events activation announces on speako.events, written to its outbox."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from google.protobuf import timestamp_pb2

from chassis import outbox
from chassis.broker import EVENTS_EXCHANGE
from speako.events.v1 import events_pb2

VERSION_LIVE = "version.live"
AGENT_ACTIVATED = "agent.activated"
AGENT_DEACTIVATED = "agent.deactivated"


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


class OutboxEvents:
    """Enqueues events inside the caller's transaction (the outbox relay publishes them), or builds
    them for a store statement that writes them with its change."""

    @staticmethod
    def version_live(
        *, agent: str, version: str, content_sha256: str, previous_version: str | None, live_time: datetime
    ) -> outbox.Outgoing:
        """A version started serving calls (written by the store with the change that makes it live)."""
        return outbox.Outgoing.of(
            exchange=EVENTS_EXCHANGE,
            routing_key=VERSION_LIVE,
            message=events_pb2.VersionLive(
                agent=agent,
                version=version,
                content_sha256=content_sha256,
                previous_version=previous_version or "",
                live_time=_timestamp(live_time),
            ),
        )

    async def agent_activated(
        self, con: asyncpg.Connection, *, agent: str, live_version: str, event_time: datetime
    ) -> None:
        """The agent started receiving calls."""
        await outbox.enqueue(
            con,
            exchange=EVENTS_EXCHANGE,
            routing_key=AGENT_ACTIVATED,
            message=events_pb2.AgentActivated(
                agent=agent, live_version=live_version, event_time=_timestamp(event_time)
            ),
        )

    async def agent_deactivated(self, con: asyncpg.Connection, *, agent: str, event_time: datetime) -> None:
        """The agent routes no new calls."""
        await outbox.enqueue(
            con,
            exchange=EVENTS_EXCHANGE,
            routing_key=AGENT_DEACTIVATED,
            message=events_pb2.AgentDeactivated(agent=agent, event_time=_timestamp(event_time)),
        )
