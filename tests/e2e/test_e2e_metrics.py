"""The service metrics move: scraped over HTTP from the four service processes during real work."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import grpc.aio
import pytest

from speako.activation.v1 import activation_service_pb2 as act
from speako.activation.v1 import activation_service_pb2_grpc as act_grpc
from speako.activation.v1 import runtime_service_pb2_grpc
from speako.config.v1 import resources_pb2 as res
from speako.notifier.v1 import notifier_service_pb2 as ntf
from speako.notifier.v1 import notifier_service_pb2_grpc as ntf_grpc
from tests.conftest import bearer
from tests.e2e.test_e2e_tracing import publish_once
from tests.harness import free_metrics_port_base, scrape_metrics

PORT_OFFSET = {"config": 1, "publisher": 2, "notifier": 3, "activation": 4}
NUMBER = "+14155550142"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Scraper:
    def __init__(self, base: int) -> None:
        self.base = base

    async def __call__(self, service: str) -> Samples:
        return await asyncio.to_thread(scrape_metrics, self.base + PORT_OFFSET[service])

    async def until(self, service: str, name: str, labels: dict[str, str], predicate, timeout: float = 15.0) -> float:
        """Scrape until the sample satisfies predicate (counters move asynchronously); return it."""
        key = (name, frozenset(labels.items()))
        value = None
        async with asyncio.timeout(timeout):
            while True:
                value = (await self(service)).get(key)
                if value is not None and predicate(value):
                    return value
                await asyncio.sleep(0.2)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
async def metered(platform_factory):
    async def start(**extra_env: str):
        base = free_metrics_port_base()
        platform = await platform_factory(SPEAKO_METRICS_PORT_BASE=str(base), **extra_env)
        return platform, Scraper(base)

    return start


async def test_publish_and_call_metrics_move(metered, token):
    platform, scrape = await metered()
    before = await scrape("publisher")
    assert value(before, "speako_publish_jobs_total", state="PUBLISHED", reason="") in (None, 0.0)

    job = await publish_once(platform, token, "metered")
    assert job.state == res.PublishJob.STATE_PUBLISHED

    # The publisher counts the outcome, the attempt and the publish-to-live time of the job.
    await scrape.until("publisher", "speako_publish_jobs_total", {"state": "PUBLISHED", "reason": ""}, lambda v: v == 1)
    publisher = await scrape("publisher")
    assert value(publisher, "speako_deploy_attempts_total", outcome="OK") == 1
    assert value(publisher, "speako_publish_to_live_seconds_count") == 1
    assert 0 < value(publisher, "speako_publish_to_live_seconds_sum") < 30
    assert value(publisher, "speako_consumer_lag_seconds_count", queue="publisher.publish-requests") == 1
    assert value(publisher, "speako_queue_messages", queue="publisher.publish-requests") == 0
    assert value(publisher, "speako_queue_messages", queue="publisher.publish-requests.dead-letter") == 0
    # Every outbox drains once the broker confirmed its rows: backlog and age read from the database.
    for service in ("config", "publisher", "activation"):
        await scrape.until(service, "speako_outbox_backlog_messages", {}, lambda v: v == 0)
        assert value(await scrape(service), "speako_outbox_oldest_age_seconds") == 0
    config = await scrape("config")
    assert value(config, "speako_rpc_duration_seconds_count", method="PublishDraft", code="OK") == 1

    # Notifier: the job events were consumed (lag observed) and a watch is an active stream.
    await scrape.until("notifier", "speako_consumer_lag_seconds_count", {"queue": "notifier.events"}, lambda v: v >= 3)
    md = bearer(token(["admin"], "acme"))
    async with grpc.aio.insecure_channel(platform.addr("notifier")) as channel:
        stream = ntf_grpc.NotifierServiceStub(channel).WatchPublishJobs(
            ntf.WatchPublishJobsRequest(parent="tenants/acme"), metadata=md
        )
        await scrape.until("notifier", "speako_rpc_active_streams", {"method": "WatchPublishJobs"}, lambda v: v == 1)
        stream.cancel()
    await scrape.until("notifier", "speako_rpc_active_streams", {"method": "WatchPublishJobs"}, lambda v: v == 0)

    # Activation: a routed call is active until it ends; RouteCall's latency is recorded.
    agent = job.name.rsplit("/publishJobs/", 1)[0]
    service_md = bearer(token(["service"], "*", "speako-telephony"))
    async with grpc.aio.insecure_channel(platform.addr("activation")) as channel:
        activation = act_grpc.ActivationServiceStub(channel)
        await activation.AssignPhoneNumber(
            act.AssignPhoneNumberRequest(name=agent, phone_number=NUMBER, request_id=str(uuid.uuid4())),
            metadata=md,
            timeout=10,
        )
        await activation.ActivateAgent(
            act.ActivateAgentRequest(name=agent, request_id=str(uuid.uuid4())), metadata=md, timeout=10
        )
        call = await _route_when_routable(activation, service_md)
        await scrape.until("activation", "speako_activation_active_calls", {}, lambda v: v == 1)
        samples = await scrape("activation")
        assert value(samples, "speako_rpc_duration_seconds_count", method="RouteCall", code="OK") == 1
        await activation.EndCall(act.EndCallRequest(name=call.name), metadata=service_md, timeout=10)
    await scrape.until("activation", "speako_activation_active_calls", {}, lambda v: v == 0)


async def _route_when_routable(activation, md):
    # Activation is seen by RouteCall through the routing table's sync (immediate on one replica).
    async with asyncio.timeout(10):
        while True:
            try:
                return await activation.RouteCall(
                    act.RouteCallRequest(called_number=NUMBER, caller_number="+14155550199"), metadata=md, timeout=10
                )
            except grpc.aio.AioRpcError as err:
                if err.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                    raise
            await asyncio.sleep(0.1)


class RejectingRuntime(runtime_service_pb2_grpc.RuntimeServiceServicer):
    async def DeployBundle(self, request, context):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "voice 'aria' is not available in this region")


async def test_a_failed_publish_is_counted_by_reason_and_attempt_outcome(metered, token):
    runtime = grpc.aio.server()
    runtime_service_pb2_grpc.add_RuntimeServiceServicer_to_server(RejectingRuntime(), runtime)
    port = runtime.add_insecure_port("127.0.0.1:0")
    await runtime.start()
    try:
        platform, scrape = await metered(SPEAKO_RUNTIME_ADDR=f"127.0.0.1:{port}")
        job = await publish_once(platform, token, "rejected")
    finally:
        await runtime.stop(0)
    assert job.state == res.PublishJob.STATE_FAILED
    await scrape.until(
        "publisher", "speako_publish_jobs_total", {"state": "FAILED", "reason": "INVALID_CONFIG"}, lambda v: v == 1
    )
    publisher = await scrape("publisher")
    assert value(publisher, "speako_deploy_attempts_total", outcome="INVALID_ARGUMENT") == 1
    assert value(publisher, "speako_deploy_attempts_total", outcome="OK") is None
    assert value(publisher, "speako_publish_to_live_seconds_count") == 0
    assert value(publisher, "speako_publish_jobs_total", state="PUBLISHED", reason="") is None
