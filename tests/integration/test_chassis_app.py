"""The chassis server: auth, error mapping, health and reflection over a real gRPC channel."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from chassis import auth, errors
from chassis.names import AgentName
from chassis.server import GrpcApp
from speako.config.v1 import config_service_pb2, config_service_pb2_grpc, resources_pb2
from tests.conftest import TEST_SECRET, bearer

SERVICE = "speako.config.v1.ConfigService"
POLICY = {
    f"/{SERVICE}/GetAgent": auth.Rule(auth.Access.READ),
    f"/{SERVICE}/CreateAgent": auth.Rule(auth.Access.EDIT),
}


class FakeConfig(config_service_pb2_grpc.ConfigServiceServicer):
    async def GetAgent(self, request, context):
        name = AgentName.parse(request.name)
        if name.agent == "boom":
            raise RuntimeError("secret internals")
        if name.agent == "missing":
            raise errors.NotFound("no such agent", resource_name=str(name))
        return resources_pb2.Agent(name=str(name), display_name=auth.current_principal().subject)


@pytest.fixture
async def stub(settings):
    app = GrpcApp(service_name="speako-test", settings=settings, listen_addr="127.0.0.1:0", policy=POLICY)
    app.add_service(SERVICE, lambda s: config_service_pb2_grpc.add_ConfigServiceServicer_to_server(FakeConfig(), s))
    port = await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield config_service_pb2_grpc.ConfigServiceStub(channel), channel
    await channel.close()
    await app.stop(0.5)


async def _code(call):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def test_authenticated_reader_reads_own_tenant(stub, token):
    s, _ = stub
    agent = await s.GetAgent(
        config_service_pb2.GetAgentRequest(name="tenants/acme/agents/a"),
        metadata=bearer(token(["viewer"], "acme", "alice")),
        timeout=5,
    )
    assert agent.display_name == "alice"


async def test_missing_bad_and_expired_tokens_are_unauthenticated(stub, token):
    s, _ = stub
    req = config_service_pb2.GetAgentRequest(name="tenants/acme/agents/a")
    assert (await _code(s.GetAgent(req, timeout=5))).code() == grpc.StatusCode.UNAUTHENTICATED
    bad = auth.mint_token("another-secret-of-thirty-two-bytes!", subject="x", tenant="acme", roles=["admin"])
    assert (await _code(s.GetAgent(req, metadata=bearer(bad), timeout=5))).code() == grpc.StatusCode.UNAUTHENTICATED
    expired = auth.mint_token(TEST_SECRET, subject="x", tenant="acme", roles=["admin"], ttl_s=-60)
    err = await _code(s.GetAgent(req, metadata=bearer(expired), timeout=5))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in err.details()


async def test_other_tenant_and_missing_role_are_denied(stub, token):
    s, _ = stub
    req = config_service_pb2.GetAgentRequest(name="tenants/globex/agents/a")
    err = await _code(s.GetAgent(req, metadata=bearer(token(["admin"], "acme")), timeout=5))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    create = config_service_pb2.CreateAgentRequest(parent="tenants/acme", agent_id="x")
    err = await _code(s.CreateAgent(create, metadata=bearer(token(["viewer"], "acme")), timeout=5))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    # sre reads any tenant.
    ok = await s.GetAgent(req, metadata=bearer(token(["sre"], "acme")), timeout=5)
    assert ok.name == "tenants/globex/agents/a"


async def test_rpc_missing_from_policy_is_denied(stub, token):
    s, _ = stub
    err = await _code(
        s.ListAgents(
            config_service_pb2.ListAgentsRequest(parent="tenants/acme"),
            metadata=bearer(token(["admin"], "*")),
            timeout=5,
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_errors_map_to_rich_status_and_internals_stay_hidden(stub, token):
    s, _ = stub
    md = bearer(token(["viewer"], "acme"))
    err = await _code(s.GetAgent(config_service_pb2.GetAgentRequest(name="bad name"), metadata=md, timeout=5))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(err)
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert bad.field_violations[0].field == "name"
    err = await _code(
        s.GetAgent(config_service_pb2.GetAgentRequest(name="tenants/acme/agents/missing"), metadata=md, timeout=5)
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = await _code(
        s.GetAgent(config_service_pb2.GetAgentRequest(name="tenants/acme/agents/boom"), metadata=md, timeout=5)
    )
    assert err.code() == grpc.StatusCode.INTERNAL
    assert "secret internals" not in err.details()


async def test_health_is_open_and_serving(stub):
    _, channel = stub
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_rpc_metrics_are_served_over_http(settings, token):
    import dataclasses
    import urllib.request

    from tests.harness import free_port

    port = free_port()
    settings = dataclasses.replace(settings, metrics_ports={"test": port})
    app = GrpcApp(service_name="speako-test", settings=settings, listen_addr="127.0.0.1:0", policy=POLICY)
    app.add_service(SERVICE, lambda s: config_service_pb2_grpc.add_ConfigServiceServicer_to_server(FakeConfig(), s))
    grpc_port = await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            s = config_service_pb2_grpc.ConfigServiceStub(channel)
            md = bearer(token(["viewer"], "acme"))
            await s.GetAgent(config_service_pb2.GetAgentRequest(name="tenants/acme/agents/a"), metadata=md, timeout=5)
            await _code(s.GetAgent(config_service_pb2.GetAgentRequest(name="x"), metadata=md, timeout=5))
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        )
    finally:
        await app.stop(0.5)
    assert 'speako_rpc_duration_seconds_count{code="OK",method="GetAgent"} 1.0' in body
    assert 'speako_rpc_duration_seconds_count{code="INVALID_ARGUMENT",method="GetAgent"} 1.0' in body
