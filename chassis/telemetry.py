"""OpenTelemetry set-up from the standard OTEL_* variables, one tracer provider per service.

Providers are per service rather than global so that ``speako serve all`` still labels each
span with the right ``service.name``. Exporters: ``OTEL_TRACES_EXPORTER`` (otlp, console, none;
when unset, otlp if an OTLP endpoint is configured, else none). Sampler and batch delay come from
``OTEL_TRACES_SAMPLER[_ARG]`` and ``OTEL_BSP_*``, read by the SDK itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanKind

_providers: dict[str, TracerProvider] = {}
# One tracer per service: getting one from the provider costs a lookup and a new object per call.
_tracers: dict[str, trace.Tracer] = {}
# The sampler of providers whose spans nothing would read: no root span is sampled.
_NO_ROOTS = ParentBased(ALWAYS_OFF)
# Extra processors (tests, benchmarks) attached to every provider, present and future.
_extra_processors: list[SpanProcessor] = []


def _exporters_from_env() -> list[SpanExporter]:
    names = os.environ.get("OTEL_TRACES_EXPORTER")
    if names is None:
        has_endpoint = any(
            os.environ.get(k) for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )
        names = "otlp" if has_endpoint else "none"
    exporters: list[SpanExporter] = []
    for name in (n.strip() for n in names.split(",")):
        if name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            protocol = os.environ.get(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            )
            if protocol.startswith("http"):
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            else:
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[assignment]
                    OTLPSpanExporter,
                )
            exporters.append(OTLPSpanExporter())
        elif name in ("none", ""):
            continue
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER: unsupported exporter {name!r}")
    return exporters


def tracer_provider(service_name: str) -> TracerProvider:
    """Return the service's provider, creating it from the environment on first use."""
    provider = _providers.get(service_name)
    if provider is None:
        exporters = _exporters_from_env()
        sampler = None  # the SDK reads OTEL_TRACES_SAMPLER
        if not exporters and not _extra_processors and "OTEL_TRACES_SAMPLER" not in os.environ:
            # Nothing would ever read the spans: do not record them (RouteCall pays for each one).
            # Trace ids are still generated and propagated, so PublishJob.trace_id stays valid.
            sampler = _NO_ROOTS
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}), sampler=sampler)
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        for processor in _extra_processors:
            provider.add_span_processor(processor)
        _providers[service_name] = provider
    return provider


def samples_no_roots(provider: TracerProvider) -> bool:
    """Whether the provider records only spans under a sampled remote parent (nothing exports)."""
    return provider.sampler is _NO_ROOTS


def tracer(service_name: str) -> trace.Tracer:
    """A tracer that records spans under ``service_name``."""
    found = _tracers.get(service_name)
    if found is None:
        found = _tracers[service_name] = tracer_provider(service_name).get_tracer("speako")
    return found


def add_span_processor(processor: SpanProcessor) -> None:
    """Attach a processor to every service's provider (used by tests and benchmarks)."""
    _extra_processors.append(processor)
    for provider in _providers.values():
        provider.add_span_processor(processor)


def shutdown() -> None:
    """Flush and stop every provider (at process exit)."""
    for provider in _providers.values():
        provider.shutdown()


def current_trace_id() -> str:
    """Hex trace id of the active span (sampled or not), or '' when there is none."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


def inject_headers() -> dict[str, str]:
    """The active trace context as W3C headers (traceparent, tracestate)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def span_from_headers(
    service_name: str, name: str, headers: Mapping[str, str], kind: SpanKind, attributes: Mapping[str, str]
) -> Iterator[trace.Span]:
    """Start a span that continues the trace carried in ``headers`` (a broker hop)."""
    parent = propagate.extract(dict(headers))
    token = otel_context.attach(parent)
    try:
        with tracer(service_name).start_as_current_span(name, kind=kind, attributes=dict(attributes)) as span:
            yield span
    finally:
        otel_context.detach(token)
