"""RouteCall / GetCall / EndCall: pinning, draining, replicas and restarts, against real servers."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc

from speako.activation.v1 import activation_service_pb2 as act
from speako.activation.v1 import resources_pb2
from tests.integration.activation.activation_support import eventually, rpc_error, stop_replica

AGENT = "tenants/acme/agents/front-desk"
NUMBER = "+14155550101"
V1, V2 = f"{AGENT}/versions/1", f"{AGENT}/versions/2"


async def routes_to(node, number: str, version: str) -> bool:
    try:
        call = await node.route(number)
    except grpc.aio.AioRpcError:
        return False
    await node.end_call(call.name)
    return call.version == version


async def refuses(node, number: str, code: grpc.StatusCode) -> bool:
    try:
        call = await node.route(number)
    except grpc.aio.AioRpcError as err:
        return err.code() == code
    await node.end_call(call.name)
    return False


def by_version(status: resources_pb2.AgentStatus) -> dict[str, int]:
    return {v.version: v.active_calls for v in status.active_calls_by_version}


async def test_unknown_invalid_and_inactive_numbers_are_refused(start_replica):
    node = await start_replica()
    assert (await rpc_error(node.route("+19995550000"))).code() == grpc.StatusCode.NOT_FOUND
    assert (await rpc_error(node.route("555-0101"))).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await rpc_error(node.route(NUMBER, caller="anonymous"))).code() == grpc.StatusCode.INVALID_ARGUMENT
    await node.deploy(AGENT, 1)
    await node.assign(AGENT, NUMBER)
    await eventually(lambda: refuses(node, NUMBER, grpc.StatusCode.FAILED_PRECONDITION))  # a DRAFT
    err = await rpc_error(node.activation.RouteCall(act.RouteCallRequest(called_number=NUMBER), metadata=node.admin_md))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED  # calls are for the telephony service


async def test_a_call_keeps_its_version_through_a_publish(start_replica):
    node = await start_replica()
    await node.launch(AGENT, NUMBER)
    await eventually(lambda: routes_to(node, NUMBER, V1))
    old = await node.route(NUMBER, caller="")
    assert (old.agent, old.version, old.state) == (AGENT, V1, resources_pb2.Call.STATE_ACTIVE)
    assert old.name.startswith("calls/") and old.caller_number == "" and old.called_number == NUMBER

    await node.deploy(AGENT, 2)
    await eventually(lambda: routes_to(node, NUMBER, V2))
    new = await node.route(NUMBER)
    assert new.version == V2 and new.bundle_sha256 != old.bundle_sha256
    assert (await node.get_call(old.name)).version == V1
    assert by_version(await node.status(AGENT)) == {V1: 1, V2: 1}

    ended = await node.end_call(old.name)
    assert ended.state == resources_pb2.Call.STATE_ENDED and ended.version == V1 and ended.HasField("end_time")
    assert await node.end_call(old.name) == ended  # idempotent
    status = await node.status(AGENT)
    assert by_version(status) == {V2: 1} and status.active_calls == 1


async def test_deactivation_routes_no_new_calls_and_lets_calls_finish(start_replica):
    node = await start_replica()
    await node.launch(AGENT, NUMBER)
    await eventually(lambda: routes_to(node, NUMBER, V1))
    calls = [await node.route(NUMBER) for _ in range(3)]
    await node.deactivate(AGENT)
    await eventually(lambda: refuses(node, NUMBER, grpc.StatusCode.FAILED_PRECONDITION))
    status = await node.status(AGENT)
    assert status.state == resources_pb2.AgentStatus.STATE_INACTIVE and status.active_calls == 3
    for call in calls:
        assert (await node.get_call(call.name)).state == resources_pb2.Call.STATE_ACTIVE
        assert (await node.end_call(call.name)).version == V1
    assert (await node.status(AGENT)).active_calls == 0


async def test_unknown_and_malformed_call_names(start_replica):
    node = await start_replica()
    missing = await rpc_error(node.get_call("calls/0b9f7f43-7d7b-4f6e-9a59-0d0e3a0c4e11"))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert (await rpc_error(node.get_call("calls/not-a-uuid"))).code() == grpc.StatusCode.NOT_FOUND
    assert (await rpc_error(node.end_call("tenants/acme/calls/x"))).code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_changes_through_one_replica_reach_the_other(start_replica):
    writer, reader = await start_replica(), await start_replica()
    await writer.launch(AGENT, NUMBER)
    await eventually(lambda: routes_to(reader, NUMBER, V1))
    await writer.deploy(AGENT, 2)
    await eventually(lambda: routes_to(reader, NUMBER, V2))
    await writer.deactivate(AGENT)
    await eventually(lambda: refuses(reader, NUMBER, grpc.StatusCode.FAILED_PRECONDITION))
    await writer.activate(AGENT)
    await writer.assign(AGENT, "+14155550102")
    await eventually(lambda: routes_to(reader, "+14155550102", V2))
    await writer.activation.ReleasePhoneNumber(
        act.ReleasePhoneNumberRequest(name=AGENT, phone_number=NUMBER), metadata=writer.admin_md, timeout=10
    )
    await eventually(lambda: refuses(reader, NUMBER, grpc.StatusCode.NOT_FOUND))


async def test_polling_catches_up_when_the_listen_connection_dies(start_replica, settings):
    # The LISTEN connections are checked only every minute here: only polling can catch up.
    writer = await start_replica(routing_listener_check_s=60.0)
    reader = await start_replica(routing_listener_check_s=60.0)
    await writer.launch(AGENT, NUMBER)
    await eventually(lambda: routes_to(reader, NUMBER, V1))
    con = await asyncpg.connect(settings.database_url)
    try:
        listeners = (
            "FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'speako-activation-routing'"
        )

        async def both_listening() -> bool:
            return await con.fetchval(f"SELECT count(*) {listeners}") == 2

        await eventually(both_listening)
        # Kill both replicas' LISTEN connections (silently, as far as the sync loops can tell).
        assert await con.fetchval(f"SELECT count(pg_terminate_backend(pid)) {listeners}") == 2
    finally:
        await con.close()
    await writer.deploy(AGENT, 2)
    await eventually(lambda: routes_to(reader, NUMBER, V2))
    await writer.deactivate(AGENT)
    await eventually(lambda: refuses(reader, NUMBER, grpc.StatusCode.FAILED_PRECONDITION))


async def test_a_pinned_call_survives_a_restart(start_replica):
    node = await start_replica()
    await node.launch(AGENT, NUMBER)
    await eventually(lambda: routes_to(node, NUMBER, V1))
    calls = await asyncio.gather(*(node.route(NUMBER) for _ in range(20)))
    await node.deploy(AGENT, 2)
    await stop_replica(node)

    restarted = await start_replica()
    for call in calls:
        again = await restarted.get_call(call.name)
        assert (again.version, again.bundle_sha256, again.start_time) == (V1, call.bundle_sha256, call.start_time)
    # The table is loaded before serving: the first call after the restart already sees version 2.
    assert (await restarted.route(NUMBER)).version == V2
    assert by_version(await restarted.status(AGENT)) == {V1: 20, V2: 1}
