"""Prometheus metrics: one registry and one /metrics HTTP endpoint per service.

Registries are per service (not the global default) so ``speako serve all`` keeps each service's
figures apart, each on its own port.

Most figures are counted where things happen. Figures that live in PostgreSQL or RabbitMQ (outbox
backlog, queue depths, active calls) are read at scrape time instead: the HTTP thread runs the
service's coroutines on its event loop, so nobody polls the database when nobody is watching and a
scrape never shows a stale value.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric

log = logging.getLogger("speako.metrics")

# A coroutine producing metric families when Prometheus scrapes.
ScrapeReader = Callable[[], Awaitable[Iterable[Metric]]]

# Buckets from 0.5 ms to 30 s: RouteCall lives at the bottom, publishes in the middle.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServiceMetrics:
    """The registry of one service plus the RPC metrics every service has."""

    def __init__(self, service_name: str) -> None:
        self.service_name = service_name
        self.registry = CollectorRegistry()
        self.rpc_duration = Histogram(
            "speako_rpc_duration_seconds",
            "Server-side duration of gRPC calls (streams: until the stream ends).",
            ["method", "code"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.active_streams = Gauge(
            "speako_rpc_active_streams", "Server-streaming calls in progress.", ["method"], registry=self.registry
        )
        self.consumer_lag = Histogram(
            "speako_consumer_lag_seconds",
            "Time from a message being created (its outbox row) to the start of its processing, by queue.",
            ["queue"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._scraped = _ScrapedAtCollection()
        self.registry.register(self._scraped)
        self._server: Any = None

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, doc, list(labels), registry=self.registry)

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, list(labels), registry=self.registry)

    def histogram(
        self, name: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] = LATENCY_BUCKETS
    ) -> Histogram:
        return Histogram(name, doc, list(labels), buckets=buckets, registry=self.registry)

    def read_at_scrape(self, read: ScrapeReader) -> None:
        """Add figures read by ``read`` on the service's event loop each time /metrics is scraped."""
        self._scraped.add(read)

    def report_outbox(self, backlog: Callable[[], Awaitable[tuple[int, float]]]) -> None:
        """Outbox rows not yet confirmed by the broker, and the age of the oldest, read at scrape."""

        async def read() -> list[Metric]:
            pending, oldest_age_s = await backlog()
            return [
                gauge("speako_outbox_backlog_messages", "Outbox rows not yet confirmed by the broker.", pending),
                gauge("speako_outbox_oldest_age_seconds", "Age of the oldest unsent outbox row.", oldest_age_s),
            ]

        self.read_at_scrape(read)

    def report_queue_depths(self, depths: Callable[[], Awaitable[Mapping[str, int]]]) -> None:
        """Messages waiting in the service's queues (the consumer's backlog) and their dead letters."""

        async def read() -> list[Metric]:
            family = GaugeMetricFamily(
                "speako_queue_messages", "Messages ready in a queue, not yet taken by a consumer.", labels=["queue"]
            )
            for queue, count in (await depths()).items():
                family.add_metric([queue], count)
            return [family]

        self.read_at_scrape(read)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose /metrics on ``port`` (0 disables it); call from the service's event loop."""
        self._scraped.bind(asyncio.get_running_loop())
        if port:
            self._server, _ = start_http_server(port, addr=addr, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def gauge(name: str, doc: str, value: float, labels: Mapping[str, str] | None = None) -> GaugeMetricFamily:
    """One gauge sample, for a ScrapeReader."""
    family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


class _ScrapedAtCollection:
    """A prometheus collector running async readers on the service loop, each bounded in time.

    A reader that fails or is too slow (database down, loop busy) leaves its figures out of that
    scrape rather than failing the whole scrape: a missing series is the signal.
    """

    def __init__(self, timeout_s: float = 2.0) -> None:
        self._readers: list[ScrapeReader] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeout_s = timeout_s

    def add(self, read: ScrapeReader) -> None:
        self._readers.append(read)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def describe(self) -> list[Metric]:
        return []  # names are only known once read; nothing to check for clashes up front

    def collect(self) -> Iterator[Metric]:
        loop = self._loop
        if not self._readers or loop is None or not loop.is_running() or _on_loop_thread(loop):
            return  # from the loop's own thread, waiting for the loop would deadlock
        future = asyncio.run_coroutine_threadsafe(self._read_all(), loop)
        try:
            # Each reader has its own bound inside; this one only guards against a blocked loop.
            results = future.result(self._timeout_s + 1.0)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError, RuntimeError):
            future.cancel()
            log.warning("the event loop did not answer the metrics scrape; scraped figures left out")
            return
        for result in results:
            if isinstance(result, BaseException):
                log.warning("a metrics read failed; left out of this scrape: %r", result)
                continue
            yield from result

    async def _read_all(self) -> list[Iterable[Metric] | BaseException]:
        async def one(read: ScrapeReader) -> Iterable[Metric]:
            async with asyncio.timeout(self._timeout_s):
                return list(await read())

        return await asyncio.gather(*(one(read) for read in self._readers), return_exceptions=True)


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
