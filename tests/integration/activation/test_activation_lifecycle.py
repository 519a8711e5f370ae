"""Agent lifecycle and phone numbers of ActivationService against real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from speako.activation.v1 import activation_service_pb2 as act
from speako.activation.v1 import resources_pb2
from tests.conftest import bearer
from tests.integration.activation.activation_support import broken_config, rpc_error

AGENT = "tenants/acme/agents/front-desk"
State = resources_pb2.AgentStatus


def violations(err: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    out = []
    for any_detail in rpc_status.from_call(err).details:
        if any_detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            any_detail.Unpack(failure)
            out += [(v.type, v.subject) for v in failure.violations]
    return out


def field_violations(err: grpc.aio.AioRpcError) -> list[str]:
    out = []
    for any_detail in rpc_status.from_call(err).details:
        if any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_detail.Unpack(bad)
            out += [v.field for v in bad.field_violations]
    return out


async def test_activation_lists_every_unmet_launch_condition(start_replica):
    node = await start_replica()
    err = await rpc_error(node.activate(AGENT))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert violations(err) == [("LIVE_VERSION", AGENT), ("PHONE_NUMBER", AGENT)]

    await node.deploy(AGENT, 1, broken_config())
    err = await rpc_error(node.activate(AGENT))
    found = violations(err)
    assert ("PHONE_NUMBER", AGENT) in found
    checklist = [s for t, s in found if t == "CHECKLIST"]
    assert checklist and set(checklist) == {f"{AGENT}/versions/1"}
    assert len(checklist) >= 2  # one per checklist error (greeting and prompt)
    assert (await node.status(AGENT)).state == State.STATE_DRAFT  # refusals change nothing


async def test_lifecycle_draft_active_inactive_active_with_events(start_replica, events):
    node = await start_replica()
    await node.deploy(AGENT, 1)
    await node.assign(AGENT, "+14155550101")
    status = await node.activate(AGENT)
    assert (status.state, status.live_version, list(status.phone_numbers)) == (
        State.STATE_ACTIVE,
        f"{AGENT}/versions/1",
        ["+14155550101"],
    )
    assert (await node.activate(AGENT)).state == State.STATE_ACTIVE  # already active: no change
    assert (await node.deactivate(AGENT)).state == State.STATE_INACTIVE
    assert (await node.deactivate(AGENT)).state == State.STATE_INACTIVE
    assert (await node.activate(AGENT)).state == State.STATE_ACTIVE
    activated = await events.wait_for("agent.activated", 2)
    (deactivated,) = await events.wait_for("agent.deactivated", 1)
    assert [(m.agent, m.live_version) for m in activated] == [(AGENT, f"{AGENT}/versions/1")] * 2
    assert deactivated.agent == AGENT
    await asyncio.sleep(0.3)
    assert len(events.of("agent.activated")) == 2 and len(events.of("agent.deactivated")) == 1


async def test_a_draft_cannot_be_deactivated(start_replica):
    node = await start_replica()
    err = await rpc_error(node.deactivate(AGENT))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert violations(err) == [("STATE", AGENT)]


async def test_request_id_repeats_return_the_first_answer(start_replica):
    node = await start_replica()
    await node.deploy(AGENT, 1)
    request_id = str(uuid.uuid4())
    first = await node.assign(AGENT, "+14155550101", request_id)
    await node.assign(AGENT, "+14155550102")
    again = await node.assign(AGENT, "+14155550101", request_id)
    assert again == first and list(again.phone_numbers) == ["+14155550101"]
    err = await rpc_error(node.assign(AGENT, "+14155550103", request_id))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and field_violations(err) == ["request_id"]
    err = await rpc_error(node.assign(AGENT, "+14155550103", "not-a-uuid"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and field_violations(err) == ["request_id"]
    assert list((await node.status(AGENT)).phone_numbers) == ["+14155550101", "+14155550102"]


async def test_phone_numbers_are_validated_and_released(start_replica):
    node = await start_replica()
    for bad in ["4155550101", "+0155", "+1 415 555 0101", ""]:
        err = await rpc_error(node.assign(AGENT, bad))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and field_violations(err) == ["phone_number"]
    await node.assign(AGENT, "+14155550101")
    assert list((await node.assign(AGENT, "+14155550101")).phone_numbers) == ["+14155550101"]  # idempotent
    err = await rpc_error(
        node.activation.ReleasePhoneNumber(
            act.ReleasePhoneNumberRequest(name=AGENT, phone_number="+14155550199"), metadata=node.admin_md, timeout=10
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    released = await node.activation.ReleasePhoneNumber(
        act.ReleasePhoneNumberRequest(name=AGENT, phone_number="+14155550101"), metadata=node.admin_md, timeout=10
    )
    assert list(released.phone_numbers) == []


async def test_an_active_agent_keeps_its_last_number(start_replica):
    node = await start_replica()
    await node.launch(AGENT, "+14155550101")
    err = await rpc_error(
        node.activation.ReleasePhoneNumber(
            act.ReleasePhoneNumberRequest(name=AGENT, phone_number="+14155550101"), metadata=node.admin_md, timeout=10
        )
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert list((await node.status(AGENT)).phone_numbers) == ["+14155550101"]


async def test_a_number_belongs_to_one_agent_under_concurrent_assignment(start_replica, token):
    first, second = await start_replica(), await start_replica()
    tenants = [f"t{i}" for i in range(8)]

    async def claim(i: int, tenant: str):
        node = first if i % 2 else second
        return await node.activation.AssignPhoneNumber(
            act.AssignPhoneNumberRequest(name=f"tenants/{tenant}/agents/desk", phone_number="+14155550123"),
            metadata=bearer(token(["admin"], tenant)),
            timeout=10,
        )

    results = await asyncio.gather(*(claim(i, t) for i, t in enumerate(tenants)), return_exceptions=True)
    winners = [r for r in results if isinstance(r, resources_pb2.AgentStatus)]
    losers = [r for r in results if not isinstance(r, resources_pb2.AgentStatus)]
    assert len(winners) == 1 and len(losers) == 7
    assert all(e.code() == grpc.StatusCode.ALREADY_EXISTS for e in losers)
    # Another tenant's agent is not disclosed to the losers.
    assert not any(winners[0].name in e.details() for e in losers)
    owners = []
    for tenant in tenants:
        status = await first.activation.GetAgentStatus(
            act.GetAgentStatusRequest(name=f"tenants/{tenant}/agents/desk"),
            metadata=bearer(token(["admin"], tenant)),
            timeout=10,
        )
        owners += [tenant] * len(status.phone_numbers)
    assert len(owners) == 1


async def test_other_tenants_and_missing_roles_are_denied(start_replica, token):
    node = await start_replica()
    err = await rpc_error(
        node.activation.ActivateAgent(
            act.ActivateAgentRequest(name="tenants/globex/agents/a"), metadata=node.admin_md, timeout=10
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = await rpc_error(
        node.activation.AssignPhoneNumber(
            act.AssignPhoneNumberRequest(name=AGENT, phone_number="+14155550101"),
            metadata=bearer(token(["editor"], "acme")),
            timeout=10,
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    status = await node.activation.GetAgentStatus(
        act.GetAgentStatusRequest(name=AGENT), metadata=bearer(token(["viewer"], "acme")), timeout=10
    )
    assert status.state == State.STATE_DRAFT and status.live_version == ""
    err = await rpc_error(
        node.activation.GetAgentStatus(
            act.GetAgentStatusRequest(name="tenants/acme"), metadata=node.admin_md, timeout=10
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
