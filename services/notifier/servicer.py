"""gRPC handlers of speako.notifier.v1.NotifierService: protobuf <-> store/hub, errors raised."""

from __future__ import annotations

import asyncio
import heapq
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import grpc.aio
from google.protobuf import message_factory
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from chassis.auth import current_principal
from chassis.errors import InvalidArgument, NotFound, OutOfRange, ResourceExhausted, Unavailable
from chassis.names import AgentName, NotificationName, PublishJobName, TenantName, parse_tenant_or_agent
from services.notifier.domain.hub import FanoutHub, FeedItem, HubClosed, SubscriberOverflow, Subscription
from services.notifier.domain.jobs import KNOWN_STATES, is_terminal
from services.notifier.domain.notifications import is_current, notice_violations
from services.notifier.domain.tokens import PageCursor, ResumeToken, TokenError, filter_fingerprint
from services.notifier.feed import NOTICES_TOPIC, FeedTailer, notifications_topic
from services.notifier.store import (
    MAINTENANCE,
    SYSTEM,
    NotifierStore,
    from_micros,
    micros,
    notice_notification,
)
from speako.config.v1 import resources_pb2
from speako.notifier.v1 import notifier_service_pb2 as svc_pb2
from speako.notifier.v1 import notifier_service_pb2_grpc
from speako.notifier.v1 import resources_pb2 as notifier_pb2

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class StreamOptions:
    """Tunables of the streaming RPCs (tests shorten the timers)."""

    heartbeat_s: float = 15.0
    job_wait_s: float = 30.0
    max_streams_per_tenant: int = 2000
    replay_page_size: int = 500


class StreamLimiter:
    """Caps concurrent streams per tenant in this process."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: dict[str, int] = {}

    @contextmanager
    def hold(self, tenant: str) -> Iterator[None]:
        """Count one stream of ``tenant`` for the duration; ResourceExhausted beyond the cap."""
        if self._open.get(tenant, 0) >= self._limit:
            raise ResourceExhausted(
                f"tenant {tenant!r} already has {self._limit} open streams on this server; close some first",
                reason="TOO_MANY_STREAMS",
            )
        self._open[tenant] = self._open.get(tenant, 0) + 1
        try:
            yield
        finally:
            self._open[tenant] -= 1
            if not self._open[tenant]:
                del self._open[tenant]

    def open_streams(self, tenant: str) -> int:
        """Streams of ``tenant`` open now."""
        return self._open.get(tenant, 0)


def page_size(value: int, field: str = "page_size") -> int:
    """Clamp a requested page size to [1, 1000] (0 means the default)."""
    if value < 0:
        raise InvalidArgument(f"{field} must not be negative", [(field, "must be >= 0")])
    return DEFAULT_PAGE_SIZE if value == 0 else min(value, MAX_PAGE_SIZE)


def _decode_page(token: str, fingerprint: str, field: str = "page_token") -> PageCursor | None:
    if not token:
        return None
    try:
        return PageCursor.decode(token, fingerprint)
    except TokenError as exc:
        raise InvalidArgument(f"{field} is not valid: {exc}", [(field, str(exc))]) from None


def _time(value: Timestamp, field: str) -> datetime | None:
    """A request timestamp as a datetime; one outside the valid range is INVALID_ARGUMENT."""
    if value.seconds == 0 and value.nanos == 0:
        return None
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(
            f"{field} is not a valid timestamp", [(field, "must be a valid time (years 1-9999, nanos 0-999999999)")]
        ) from None


def _page_time(time_us: int) -> datetime:
    # A forged page token can carry any integer.
    try:
        return from_micros(time_us)
    except (ValueError, OverflowError):
        raise InvalidArgument("page_token is not valid", [("page_token", "not a token this service issued")]) from None


def _stream_errors(exc: Exception) -> Exception:
    if isinstance(exc, SubscriberOverflow):
        return ResourceExhausted(
            "this stream fell too far behind the live updates and was ended; reconnect "
            "(WatchPublishJobs: pass the last resume_token received to continue without a gap)",
            reason="SUBSCRIBER_TOO_SLOW",
        )
    return Unavailable("the notifier is shutting down; reconnect (with the last resume_token)")


class NotifierServicer(notifier_service_pb2_grpc.NotifierServiceServicer):
    """Publish job status (reads and streams) and the Notification Center."""

    def __init__(
        self,
        store: NotifierStore,
        hub: FanoutHub,
        tailer: FeedTailer,
        options: StreamOptions,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._hub = hub
        self._tailer = tailer
        self._options = options
        self._clock = clock
        self.limiter = StreamLimiter(options.max_streams_per_tenant)

    def _token(self, position: int) -> str:
        return ResumeToken(self._tailer.epoch, position).encode()

    def _update(self, job: resources_pb2.PublishJob, position: int, heartbeat: bool = False) -> Any:
        return notifier_pb2.PublishJobUpdate(job=job, resume_token=self._token(position), heartbeat=heartbeat)

    def _live_update(self, item: FeedItem) -> bytes:
        # Every watcher gets the same bytes for a feed item (the token is a global position):
        # serialize once per item instead of once per watcher.
        data = item.cache.get("update")
        if data is None:
            data = self._update(item.payload, item.position).SerializeToString()
            item.cache["update"] = data
        return data

    # ---- jobs ---------------------------------------------------------------------------------

    async def GetPublishJob(self, request: svc_pb2.GetPublishJobRequest, context: Any) -> resources_pb2.PublishJob:
        """The latest known state of a publish job."""
        name = PublishJobName.parse(request.name, "name")
        stored = await self._store.get_job(str(name))
        if stored is None:
            raise NotFound(f"publish job {name} not found", resource_name=str(name), resource_type="PublishJob")
        return stored.job

    async def ListPublishJobs(
        self, request: svc_pb2.ListPublishJobsRequest, context: Any
    ) -> svc_pb2.ListPublishJobsResponse:
        """Jobs of a tenant or an agent, filtered by state and create time, newest first."""
        parent = parse_tenant_or_agent(request.parent, "parent")
        size = page_size(request.page_size)
        violations = [("states", f"{s} is not a publish job state") for s in request.states if s not in KNOWN_STATES]
        start, end = (
            _time(request.create_time_start, "create_time_start"),
            _time(request.create_time_end, "create_time_end"),
        )
        if start is not None and end is not None and end <= start:
            violations.append(("create_time_end", "must be after create_time_start"))
        if violations:
            raise InvalidArgument("invalid ListPublishJobs filter", violations)
        states = sorted(set(request.states))
        fingerprint = filter_fingerprint("jobs", parent, states, start, end)
        cursor = _decode_page(request.page_token, fingerprint)
        rows = await self._store.list_jobs(
            tenant=f"tenants/{parent.tenant}",
            agent=str(parent) if isinstance(parent, AgentName) else None,
            states=states,
            start=start,
            end=end,
            after=(_page_time(cursor.time_us), cursor.key) if cursor else None,
            limit=size + 1,
        )
        response = svc_pb2.ListPublishJobsResponse(publish_jobs=[job for job, _ in rows[:size]])
        if len(rows) > size:
            job, created = rows[size - 1]
            response.next_page_token = PageCursor(micros(created), job.name, fingerprint).encode()
        return response

    async def WatchPublishJob(self, request: svc_pb2.WatchPublishJobRequest, context: Any) -> AsyncIterator[Any]:
        """Current state, then every change, ending after a terminal state; heartbeats when idle."""
        name = PublishJobName.parse(request.name, "name")
        loop = asyncio.get_running_loop()
        with self.limiter.hold(name.tenant):
            # Subscribe before reading the store: a change committed in between arrives live.
            sub = self._subscribe(str(name))
            try:
                stored = await self._store.get_job(str(name))
                if stored is not None:
                    job, last = stored.job, stored.position
                else:
                    give_up = loop.time() + self._options.job_wait_s
                    item = None
                    while item is None:
                        remaining = give_up - loop.time()
                        if remaining <= 0:
                            raise NotFound(
                                f"publish job {name} not found (waited {self._options.job_wait_s:g}s for it)",
                                resource_name=str(name),
                                resource_type="PublishJob",
                            )
                        item = await self._get(sub, remaining)
                    job, last = item.payload, item.position
                yield self._update(job, last)
                while not is_terminal(job.state):
                    item = await self._get(sub, self._options.heartbeat_s)
                    if item is None:
                        yield self._update(job, last, heartbeat=True)
                    elif item.position > last:
                        job, last = item.payload, item.position
                        yield self._live_update(item)
            finally:
                sub.close()

    async def WatchPublishJobs(self, request: svc_pb2.WatchPublishJobsRequest, context: Any) -> AsyncIterator[Any]:
        """Endless ordered updates of a tenant or agent; resumable from any token still retained."""
        parent = parse_tenant_or_agent(request.parent, "parent")
        tenant = f"tenants/{parent.tenant}"
        agent = str(parent) if isinstance(parent, AgentName) else None
        topic = agent or tenant
        with self.limiter.hold(parent.tenant):
            sub: Subscription | None = None
            try:
                if not request.resume_token:
                    sub = self._subscribe(topic)
                    last = sub.start_position
                else:
                    last = self._resume_position(request.resume_token)
                    first_page = True
                    # Catch up page by page without a live buffer (a long replay cannot overflow it),
                    # then subscribe and replay once more: rows committed meanwhile come from the
                    # store, later ones live; live items at or before ``last`` are skipped.
                    while True:
                        replay = await self._store.replay_jobs(
                            tenant=tenant, agent=agent, after=last, limit=self._options.replay_page_size
                        )
                        self._check_retained(last, replay.head.pruned_through, replay.head.last_position, first_page)
                        first_page = False
                        for row in replay.rows:
                            yield self._update(resources_pb2.PublishJob.FromString(row.payload), row.position)
                            last = row.position
                        if len(replay.rows) < self._options.replay_page_size:
                            if sub is not None:
                                break
                            sub = self._subscribe(topic)
                while True:
                    item = await self._get(sub, self._options.heartbeat_s)
                    if item is None:
                        # Nothing of ours is buffered: every matching row up to the hub's position
                        # was delivered, so the heartbeat's token may move up to it.
                        last = max(last, self._hub.position)
                        yield notifier_pb2.PublishJobUpdate(resume_token=self._token(last), heartbeat=True)
                    elif item.position > last:
                        last = item.position
                        yield self._live_update(item)
            finally:
                if sub is not None:
                    sub.close()

    def _resume_position(self, token: str) -> int:
        try:
            decoded = ResumeToken.decode(token)
        except TokenError as exc:
            raise InvalidArgument(
                f"resume_token is not valid: {exc}",
                [("resume_token", "must be a token from a PublishJobUpdate")],
            ) from None
        if decoded.epoch != self._tailer.epoch:
            raise OutOfRange(
                "resume_token belongs to an earlier incarnation of the feed; start again without a token",
                reason="RESUME_TOKEN_EXPIRED",
            )
        return decoded.position

    @staticmethod
    def _check_retained(last: int, pruned_through: int, head: int, first_page: bool) -> None:
        if last < pruned_through:
            raise OutOfRange(
                "resume_token is older than the retained history; list the jobs and start again without a token",
                reason="RESUME_TOKEN_EXPIRED",
            )
        if first_page and last > head:
            raise InvalidArgument(
                "resume_token names a position this feed has not reached",
                [("resume_token", "must be a token from a PublishJobUpdate")],
            )

    def _subscribe(self, *topics: Any) -> Subscription:
        try:
            return self._hub.subscribe(*topics)
        except HubClosed as exc:
            raise _stream_errors(exc) from None

    @staticmethod
    async def _get(sub: Subscription, wait_s: float) -> Any:
        try:
            return await sub.get(wait_s)
        except (SubscriberOverflow, HubClosed) as exc:
            raise _stream_errors(exc) from None

    # ---- notifications ------------------------------------------------------------------------

    async def ListNotifications(
        self, request: svc_pb2.ListNotificationsRequest, context: Any
    ) -> svc_pb2.ListNotificationsResponse:
        """A tenant's System notifications and current maintenance notices, newest first."""
        tenant = TenantName.parse(request.parent, "parent")
        size = page_size(request.page_size)
        if request.category == notifier_pb2.Notification.CATEGORY_UNSPECIFIED:
            categories = [SYSTEM, MAINTENANCE]
        elif request.category in (SYSTEM, MAINTENANCE):
            categories = [request.category]
        else:
            raise InvalidArgument(
                f"category {request.category} is not a notification category",
                [("category", "must be CATEGORY_SYSTEM, CATEGORY_MAINTENANCE or unspecified")],
            )
        fingerprint = filter_fingerprint("notifications", tenant, categories, request.unread_only)
        cursor = _decode_page(request.page_token, fingerprint)
        rows = await self._store.list_notifications(
            tenant=str(tenant),
            categories=categories,
            unread_only=request.unread_only,
            after=(_page_time(cursor.time_us), cursor.key) if cursor else None,
            limit=size + 1,
            now=self._clock(),
        )
        response = svc_pb2.ListNotificationsResponse(notifications=[n for n, _, _ in rows[:size]])
        if len(rows) > size:
            _, sort_time, key = rows[size - 1]
            response.next_page_token = PageCursor(micros(sort_time), key, fingerprint).encode()
        return response

    async def MarkNotificationRead(
        self, request: svc_pb2.MarkNotificationReadRequest, context: Any
    ) -> notifier_pb2.Notification:
        """Mark one notification read for the tenant (idempotent)."""
        name = NotificationName.parse(request.name, "name")
        missing = NotFound(f"notification {name} not found", resource_name=str(name), resource_type="Notification")
        try:
            notification_id = uuid.UUID(name.notification_id)
        except ValueError:
            raise missing from None
        notification = await self._store.mark_read(f"tenants/{name.tenant}", notification_id, self._clock())
        if notification is None:
            raise missing
        return notification

    async def CreateMaintenanceNotice(
        self, request: svc_pb2.CreateMaintenanceNoticeRequest, context: Any
    ) -> notifier_pb2.MaintenanceNotice:
        """Announce planned maintenance to every tenant (shown while current)."""
        notice = request.notice
        start, end = _time(notice.start_time, "notice.start_time"), _time(notice.end_time, "notice.end_time")
        violations = notice_violations(notice.title, notice.message, start, end)
        request_id = None
        if request.request_id:
            try:
                request_id = uuid.UUID(request.request_id)
            except ValueError:
                violations.append(("request_id", "must be a UUID"))
        if violations:
            raise InvalidArgument("invalid maintenance notice", violations)
        assert start is not None and end is not None
        return await self._store.create_notice(
            title=notice.title.strip(),
            message=notice.message,
            start=start,
            end=end,
            creator=current_principal().subject,
            request_id=request_id,
            now=self._clock(),
        )

    async def WatchNotifications(self, request: svc_pb2.WatchNotificationsRequest, context: Any) -> AsyncIterator[Any]:
        """New notifications of a tenant as they appear (System, read changes, maintenance when it starts)."""
        tenant = str(TenantName.parse(request.parent, "parent"))
        with self.limiter.hold(tenant.removeprefix("tenants/")):
            sub = self._subscribe(notifications_topic(tenant), NOTICES_TOPIC)
            try:
                # Notices that start later are shown when they start; (start, name, notice) heap.
                upcoming: list[tuple[datetime, str, notifier_pb2.MaintenanceNotice]] = []
                now = self._clock()
                for notice in await self._store.pending_notices(now):
                    if notice.start_time.ToDatetime(tzinfo=UTC) > now:
                        heapq.heappush(upcoming, (notice.start_time.ToDatetime(tzinfo=UTC), notice.name, notice))
                while True:
                    now = self._clock()
                    while upcoming and upcoming[0][0] <= now:
                        _, _, notice = heapq.heappop(upcoming)
                        if notice.end_time.ToDatetime(tzinfo=UTC) > now:
                            read = await self._store.notice_read(tenant, notice.name.removeprefix("notices/"))
                            yield notice_notification(tenant, notice, read=read)
                    wait = self._options.heartbeat_s
                    if upcoming:
                        wait = min(wait, max(0.0, (upcoming[0][0] - now).total_seconds()))
                    item = await self._get(sub, wait)
                    if item is None:
                        continue
                    if item.kind == "notification":
                        yield item.payload
                    else:
                        notice = item.payload
                        start = notice.start_time.ToDatetime(tzinfo=UTC)
                        end = notice.end_time.ToDatetime(tzinfo=UTC)
                        now = self._clock()
                        if is_current(start, end, now):
                            yield notice_notification(tenant, notice, read=False)
                        elif start > now:
                            heapq.heappush(upcoming, (start, notice.name, notice))
            finally:
                sub.close()


def _serializer(message_class: type[Message]) -> Callable[[Any], bytes]:
    def serialize(response: Any) -> bytes:
        return response if isinstance(response, bytes) else message_class.SerializeToString(response)

    return serialize


def add_to_server(servicer: NotifierServicer, server: grpc.aio.Server) -> None:
    """Register the servicer like the generated helper, but let handlers yield pre-serialized bytes."""
    service = svc_pb2.DESCRIPTOR.services_by_name["NotifierService"]
    handlers = {}
    for method in service.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        make = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=request.FromString,
            response_serializer=_serializer(response),
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)
