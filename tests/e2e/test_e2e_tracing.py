"""One trace per publish (DESIGN.md 6.8), checked from spans the services really export.

The services run as separate processes configured only by standard OTEL_* variables; they export
OTLP/gRPC to a collector that this test runs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass

import grpc
import grpc.aio
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from speako.activation.v1 import runtime_service_pb2_grpc
from speako.config.v1 import config_service_pb2 as cfg
from speako.config.v1 import config_service_pb2_grpc as cfg_grpc
from speako.config.v1 import resources_pb2 as res
from speako.notifier.v1 import notifier_service_pb2_grpc as ntf_grpc
from tests.conftest import bearer
from tests.e2e.test_e2e_publish import watch_to_end
from tests.factories import valid_config

SERVICES = {"speako-config", "speako-publisher", "speako-notifier", "speako-activation"}


@dataclass(frozen=True)
class SpanRecord:
    service: str
    name: str
    kind: int
    error: bool


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """A minimal OTLP trace receiver that keeps spans by trace id."""

    def __init__(self) -> None:
        self.by_trace: dict[str, list[SpanRecord]] = defaultdict(list)

    async def Export(self, request, context):
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"), ""
            )
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.by_trace[span.trace_id.hex()].append(
                        SpanRecord(
                            service, span.name, span.kind, span.status.code == trace_pb2.Status.STATUS_CODE_ERROR
                        )
                    )
        return trace_service_pb2.ExportTraceServiceResponse()

    async def wait_for(self, trace_id: str, services: set[str], timeout: float = 20.0) -> list[SpanRecord]:
        async with asyncio.timeout(timeout):
            while {s.service for s in self.by_trace.get(trace_id, [])} < services:  # noqa: ASYNC110 (polls a condition)
                await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # let late batches of the same trace arrive
        return self.by_trace[trace_id]


@pytest.fixture
async def collector():
    server = grpc.aio.server()
    coll = Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(coll, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    coll.endpoint = f"http://127.0.0.1:{port}"
    yield coll
    await server.stop(0)


def otel_env(collector) -> dict[str, str]:
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    }


async def publish_once(platform, token, agent_id: str) -> res.PublishJob:
    md = bearer(token(["admin"], "acme"))
    async with (
        grpc.aio.insecure_channel(platform.addr("config")) as ch,
        grpc.aio.insecure_channel(platform.addr("notifier")) as nch,
    ):
        config = cfg_grpc.ConfigServiceStub(ch)
        agent = await config.CreateAgent(
            cfg.CreateAgentRequest(parent="tenants/acme", agent_id=agent_id), metadata=md, timeout=10
        )
        await config.UpdateDraft(
            cfg.UpdateDraftRequest(draft=res.Draft(name=f"{agent.name}/draft", config=valid_config())),
            metadata=md,
            timeout=10,
        )
        job = await config.PublishDraft(
            cfg.PublishDraftRequest(name=f"{agent.name}/draft", request_id=str(uuid.uuid4())), metadata=md, timeout=10
        )
        states = await watch_to_end(ntf_grpc.NotifierServiceStub(nch), job.name, md)
    return states[-1]


async def test_a_publish_is_one_trace_across_all_services_and_both_broker_hops(platform_factory, collector, token):
    platform = await platform_factory(**otel_env(collector))
    job = await publish_once(platform, token, "traced")
    assert job.state == res.PublishJob.STATE_PUBLISHED
    spans = await collector.wait_for(job.trace_id, SERVICES)
    services = {s.service for s in spans}
    assert services >= SERVICES
    kinds = defaultdict(set)
    for s in spans:
        kinds[s.kind].add(s.service)
    # Both broker hops: config -> publisher (publish.requested) and publisher -> notifier (job events).
    assert {"speako-config", "speako-publisher"} <= kinds[trace_pb2.Span.SPAN_KIND_PRODUCER]
    assert {"speako-publisher", "speako-notifier"} <= kinds[trace_pb2.Span.SPAN_KIND_CONSUMER]
    names = {(s.service, s.name) for s in spans}
    assert ("speako-config", "/speako.config.v1.ConfigService/PublishDraft") in names
    assert ("speako-config", "/speako.config.v1.ConfigService/GetVersion") in names
    assert ("speako-activation", "/speako.activation.v1.RuntimeService/DeployBundle") in names


class RejectingRuntime(runtime_service_pb2_grpc.RuntimeServiceServicer):
    async def DeployBundle(self, request, context):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "voice 'aria' is not available in this region")


async def test_a_failed_publish_trace_shows_the_failure(platform_factory, collector, token):
    runtime = grpc.aio.server()
    runtime_service_pb2_grpc.add_RuntimeServiceServicer_to_server(RejectingRuntime(), runtime)
    port = runtime.add_insecure_port("127.0.0.1:0")
    await runtime.start()
    try:
        platform = await platform_factory(SPEAKO_RUNTIME_ADDR=f"127.0.0.1:{port}", **otel_env(collector))
        job = await publish_once(platform, token, "rejected")
    finally:
        await runtime.stop(0)
    assert job.state == res.PublishJob.STATE_FAILED
    assert job.error.reason == res.PublishError.REASON_INVALID_CONFIG
    assert "not available" in job.error.message
    spans = await collector.wait_for(job.trace_id, SERVICES - {"speako-activation"})
    failed = [s for s in spans if s.error and s.service == "speako-publisher"]
    assert any("DeployBundle" in s.name for s in failed), spans
