"""RuntimeService.DeployBundle against real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import uuid
from datetime import UTC, datetime

import asyncpg
import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from chassis import broker, database, outbox
from services.activation.store import ActivationStore
from speako.activation.v1 import resources_pb2, runtime_service_pb2
from speako.events.v1 import events_pb2
from tests.integration.activation.activation_support import broken_config, bundle, launchable_config, rpc_error

AGENT = "tenants/acme/agents/front-desk"


def details(err: grpc.aio.AioRpcError, kind):
    status = rpc_status.from_call(err)
    out = []
    for any_detail in status.details:
        if any_detail.Is(kind.DESCRIPTOR):
            message = kind()
            any_detail.Unpack(message)
            out.append(message)
    return out


async def test_first_deploy_goes_live_creates_a_draft_agent_and_announces_version_live(start_replica, events):
    node = await start_replica()
    assert (await node.status(AGENT)).state == resources_pb2.AgentStatus.STATE_DRAFT  # never heard of
    deployment = await node.deploy(AGENT, 1)
    assert deployment.version == f"{AGENT}/versions/1" and deployment.live_version == deployment.version
    assert deployment.bundle_sha256 == bundle(AGENT, 1).content_sha256
    status = await node.status(AGENT)
    assert status.state == resources_pb2.AgentStatus.STATE_DRAFT
    assert status.live_version == f"{AGENT}/versions/1"
    (live,) = await events.wait_for("version.live")
    assert (live.agent, live.version, live.previous_version) == (AGENT, f"{AGENT}/versions/1", "")
    assert live.content_sha256 == deployment.bundle_sha256

    await node.deploy(AGENT, 2)
    _, live2 = await events.wait_for("version.live", 2)
    assert (live2.version, live2.previous_version) == (f"{AGENT}/versions/2", f"{AGENT}/versions/1")


async def test_redeploy_of_a_version_is_idempotent(start_replica, events):
    node = await start_replica()
    first = await node.deploy(AGENT, 1)
    again = await node.deploy(AGENT, 1)
    assert again == first
    await node.deploy(AGENT, 2)
    # A retry of version 1 after 2 went live still answers version 1's deployment, with 2 live.
    late = await node.deploy(AGENT, 1)
    assert (late.version, late.deploy_time, late.live_version) == (
        first.version,
        first.deploy_time,
        f"{AGENT}/versions/2",
    )
    await events.wait_for("version.live", 2)
    await asyncio.sleep(0.3)
    assert len(events.of("version.live")) == 2  # no event for the repeats


async def test_older_version_is_refused_naming_the_newer_live_one(start_replica):
    node = await start_replica()
    await node.deploy(AGENT, 3)
    err = await rpc_error(node.deploy(AGENT, 2))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"{AGENT}/versions/3" in err.details()
    (failure,) = details(err, error_details_pb2.PreconditionFailure)
    assert [(v.type, v.subject) for v in failure.violations] == [("NEWER_VERSION_LIVE", f"{AGENT}/versions/3")]
    assert (await node.status(AGENT)).live_version == f"{AGENT}/versions/3"


async def test_rejected_bundles_answer_invalid_argument_and_change_nothing(start_replica, settings):
    node = await start_replica()
    good = bundle(AGENT, 1)
    tampered = resources_pb2.Bundle()
    tampered.CopyFrom(good)
    tampered.config.greetings.opening_greeting = "Something else"
    foreign = resources_pb2.Bundle()
    foreign.CopyFrom(good)
    foreign.version = "tenants/acme/agents/other/versions/1"
    no_config = resources_pb2.Bundle(agent=AGENT, version=f"{AGENT}/versions/1", content_sha256=good.content_sha256)
    bad_name = resources_pb2.Bundle()
    bad_name.CopyFrom(good)
    bad_name.version = f"{AGENT}/versions/0"
    cases = [
        (tampered, "bundle.content_sha256"),
        (foreign, "bundle.version"),
        (no_config, "bundle.config"),
        (bad_name, "bundle.version"),
    ]
    for rejected, field in cases:
        err = await rpc_error(
            node.runtime.DeployBundle(
                runtime_service_pb2.DeployBundleRequest(bundle=rejected), metadata=node.service_md, timeout=10
            )
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        (bad_request,) = details(err, error_details_pb2.BadRequest)
        assert field in [v.field for v in bad_request.field_violations]
    assert (await node.status(AGENT)).live_version == ""
    con = await asyncpg.connect(settings.database_url)
    try:
        assert await con.fetchval("SELECT count(*) FROM activation.bundles") == 0
        assert await con.fetchval("SELECT count(*) FROM activation.agents") == 0
    finally:
        await con.close()


async def test_same_version_with_different_content_is_rejected(start_replica):
    node = await start_replica()
    await node.deploy(AGENT, 1)
    err = await rpc_error(node.deploy(AGENT, 1, launchable_config("A different greeting.")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_bundles_are_stored_once_per_content(start_replica, settings):
    node = await start_replica()
    config = launchable_config("Shared content.")
    await node.deploy("tenants/acme/agents/a", 1, config)
    await node.deploy("tenants/globex/agents/b", 4, config)
    await node.deploy("tenants/acme/agents/a", 2, broken_config())  # checklist errors do not block deploys
    con = await asyncpg.connect(settings.database_url)
    try:
        rows = await con.fetch("SELECT sha256, canonical FROM activation.bundles")
    finally:
        await con.close()
    assert len(rows) == 2

    assert all(hashlib.sha256(bytes(r["canonical"])).hexdigest() == r["sha256"] for r in rows)


async def test_live_never_goes_backwards_under_concurrent_deploys(start_replica, events):
    first, second = await start_replica(), await start_replica()
    versions = list(range(1, 13))
    random.Random(7).shuffle(versions)
    results = await asyncio.gather(
        *((first if i % 2 else second).deploy(AGENT, n) for i, n in enumerate(versions)), return_exceptions=True
    )
    accepted = []
    for n, result in zip(versions, results, strict=True):
        if isinstance(result, resources_pb2.Deployment):
            accepted.append(n)
        else:
            assert result.code() == grpc.StatusCode.FAILED_PRECONDITION, result
    assert 12 in accepted
    assert (await first.status(AGENT)).live_version == f"{AGENT}/versions/12"
    lives = await events.wait_for("version.live", len(accepted))
    numbers = [int(m.version.rsplit("/", 1)[1]) for m in lives]
    # Each version.live names the one it replaced; together they only go up.
    assert sorted(numbers) == sorted(accepted)
    chain = {m.version: m.previous_version for m in lives}
    ordered = sorted(numbers)
    assert chain[f"{AGENT}/versions/{ordered[0]}"] == ""
    for older, newer in itertools.pairwise(ordered):
        assert chain[f"{AGENT}/versions/{newer}"] == f"{AGENT}/versions/{older}"


async def test_only_services_may_deploy(start_replica):
    node = await start_replica()
    err = await rpc_error(
        node.runtime.DeployBundle(
            runtime_service_pb2.DeployBundleRequest(bundle=bundle(AGENT, 1)), metadata=node.admin_md, timeout=10
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = await rpc_error(
        node.runtime.DeployBundle(runtime_service_pb2.DeployBundleRequest(bundle=bundle(AGENT, 1)), timeout=10)
    )
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_deploy_whose_live_version_moved_meanwhile_writes_nothing(start_replica, settings):
    """The compare-and-set behind DeployBundle: from a stale live version it changes nothing at all."""
    node = await start_replica()
    await node.deploy(AGENT, 1)
    pool = await database.create_pool(settings.database_url, "activation")
    store = ActivationStore(pool)
    content = b'{"fallback_message":"moved"}'
    sha = hashlib.sha256(content).hexdigest()
    event = outbox.Outgoing.of(
        exchange=broker.EVENTS_EXCHANGE,
        routing_key="version.live",
        message=events_pb2.VersionLive(agent=AGENT, version=f"{AGENT}/versions/3"),
    )

    async def written() -> tuple[int, int, int]:
        async with pool.acquire() as con:
            return (
                await con.fetchval("SELECT count(*) FROM deployments WHERE agent = $1 AND version = 3", AGENT),
                await con.fetchval("SELECT count(*) FROM bundles WHERE sha256 = $1", sha),
                await con.fetchval("SELECT count(*) FROM outbox WHERE message_id = $1", uuid.UUID(event.message_id)),
            )

    try:
        async with store.statements() as tx:
            # Read while nothing was live; version 1 went live since.
            assert not await tx.make_live(AGENT, 3, sha, content, None, datetime.now(UTC), event)
            assert await written() == (0, 0, 0)
            assert (await node.status(AGENT)).live_version == f"{AGENT}/versions/1"
            assert await tx.make_live(AGENT, 3, sha, content, 1, datetime.now(UTC), event)
        assert await written() == (1, 1, 1)
        assert (await node.status(AGENT)).live_version == f"{AGENT}/versions/3"
    finally:
        await pool.close()
