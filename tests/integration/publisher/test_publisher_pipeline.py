"""The publisher against real PostgreSQL and RabbitMQ, with fake config and runtime servers."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from speako.config.v1 import resources_pb2 as config_pb2
from tests.integration.publisher.publisher_support import (
    AGENT,
    FAST,
    Outcome,
    World,
    make_request,
    make_version,
    unused_port,
)

PublishJob = config_pb2.PublishJob


async def test_publisher_publishes_a_version_and_announces_each_state(world: World) -> None:
    version = world.config.add(make_version(1))
    request = make_request(version)
    app = await world.start_publisher()
    await world.harness.publish(request)

    row = await world.harness.wait_terminal(request.job.name)
    assert (row.state, row.attempts, row.error_reason, row.sequence) == ("PUBLISHED", 1, None, 3)
    [deploy] = world.runtime.applied
    assert deploy.version == version.name and deploy.sha256 == version.content_sha256
    assert deploy.subject == "speako-publisher"

    processing, published = await world.harness.wait_events(request.job.name, 2)
    assert (processing.sequence, processing.job.state) == (2, PublishJob.STATE_PROCESSING)
    assert (published.sequence, published.job.state) == (3, PublishJob.STATE_PUBLISHED)
    # The event carries the whole job.
    job = published.job
    assert (job.version, job.attempts, job.requester, job.trace_id) == (
        version.name,
        1,
        "alice@acme",
        request.job.trace_id,
    )
    assert list(job.changed_sections) == ["greetings"]
    assert job.deadline == request.job.deadline and job.create_time == request.job.create_time
    assert not job.HasField("error")

    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_publisher_retries_transient_deploy_errors_then_publishes(world: World) -> None:
    version = world.config.add(make_version(1))
    world.runtime.script = [
        Outcome(grpc.StatusCode.UNAVAILABLE, "restarting"),
        Outcome(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy"),
        Outcome(grpc.StatusCode.DEADLINE_EXCEEDED, "slow"),
    ]
    request = make_request(version)
    await world.start_publisher()
    await world.harness.publish(request)

    row = await world.harness.wait_terminal(request.job.name)
    assert (row.state, row.attempts) == ("PUBLISHED", 4)
    assert len(world.runtime.calls) == 4 and len(world.runtime.applied) == 1
    _, published = await world.harness.wait_events(request.job.name, 2)
    assert published.job.attempts == 4


async def test_publisher_rejected_bundle_fails_at_once_with_runtime_message(world: World) -> None:
    version = world.config.add(make_version(1))
    world.runtime.script = [
        Outcome(grpc.StatusCode.INVALID_ARGUMENT, "voice 'robot-9' does not exist", "config.voice.voice_id")
    ]
    request = make_request(version)
    await world.start_publisher()
    await world.harness.publish(request)

    row = await world.harness.wait_terminal(request.job.name)
    assert (row.state, row.error_reason, row.attempts) == ("FAILED", "INVALID_CONFIG", 1)
    assert row.error_message == "voice 'robot-9' does not exist"
    assert row.error_field == "config.voice.voice_id"
    _, failed = await world.harness.wait_events(request.job.name, 2)
    assert failed.job.error.reason == config_pb2.PublishError.REASON_INVALID_CONFIG
    assert failed.job.error.message == "voice 'robot-9' does not exist"
    assert world.runtime.applied == []


@pytest.mark.parametrize("code", [grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INTERNAL])
async def test_publisher_other_deploy_errors_fail_fast_with_message(world: World, code: grpc.StatusCode) -> None:
    version = world.config.add(make_version(1))
    world.runtime.default = Outcome(code, "runtime says no")
    request = make_request(version)
    await world.start_publisher()
    await world.harness.publish(request)

    row = await world.harness.wait_terminal(request.job.name)
    assert (row.state, row.error_reason, row.attempts) == ("FAILED", "INTERNAL", 1)
    assert code.name in row.error_message and "runtime says no" in row.error_message


async def test_publisher_older_version_than_live_is_superseded(world: World) -> None:
    version = world.config.add(make_version(2))
    world.runtime.live[AGENT] = 3
    request = make_request(version)
    await world.start_publisher()
    await world.harness.publish(request)

    row = await world.harness.wait_terminal(request.job.name)
    assert (row.state, row.error_reason, row.sequence) == ("SUPERSEDED", None, 3)
    _, superseded = await world.harness.wait_events(request.job.name, 2)
    assert superseded.job.state == PublishJob.STATE_SUPERSEDED
    assert world.runtime.live[AGENT] == 3 and world.runtime.applied == []


async def test_publisher_unreachable_runtime_exhausts_retries(world: World) -> None:
    version = world.config.add(make_version(1))
    request = make_request(version)
    await world.start_publisher(runtime_addr=f"127.0.0.1:{unused_port()}")
    await world.harness.publish(request)

    row = await world.harness.wait_terminal(request.job.name)
    assert (row.state, row.error_reason, row.attempts) == ("FAILED", "DEPLOY_UNAVAILABLE", FAST.max_attempts)
    assert "UNAVAILABLE" in row.error_message and f"{FAST.max_attempts} deploy attempts" in row.error_message


async def test_publisher_retries_stop_at_the_job_deadline(world: World) -> None:
    version = world.config.add(make_version(1))
    world.runtime.default = Outcome(grpc.StatusCode.UNAVAILABLE, "down for maintenance")
    request = make_request(version, deadline_s=3.0)
    await world.start_publisher(replace(FAST, max_attempts=1000, backoff_max_s=0.3))
    await world.harness.publish(request)

    row = await world.harness.wait_terminal(request.job.name)
    # Retried until no attempt fits before the deadline (the attempt budget is far from used up):
    # the deadline ended it, so TIMEOUT, naming the runtime's last error.
    assert (row.state, row.error_reason) == ("FAILED", "TIMEOUT")
    assert "down for maintenance" in row.error_message
    assert 1 < row.attempts < 1000
    deadline = request.job.deadline.ToDatetime().replace(tzinfo=row.update_time.tzinfo)
    assert row.update_time <= deadline
    assert all(at <= deadline for _, at in world.runtime.calls)
    assert world.runtime.applied == []


async def test_publisher_slow_runtime_times_out_and_never_deploys_after(world: World) -> None:
    version = world.config.add(make_version(1))
    # Each deploy outlasts the job deadline; the attempt's RPC deadline is capped by the job's.
    world.runtime.default = Outcome(delay_s=5.0)
    request = make_request(version, deadline_s=3.0)
    await world.start_publisher(replace(FAST, deploy_attempt_timeout_s=4.5))
    await world.harness.publish(request)

    row = await world.harness.wait_terminal(request.job.name)
    assert (row.state, row.error_reason) == ("FAILED", "TIMEOUT")
    assert "deadline" in row.error_message
    assert world.runtime.calls, "a deploy was under way at the deadline"
    # The fake's slow handlers finish; none may apply a deploy, and none started after the failure.
    await world.harness.wait_for(lambda: not any(world.runtime.in_flight.values()), 10, "slow deploys to end")
    assert world.runtime.applied == []
    assert all(at < row.update_time for _, at in world.runtime.calls)


async def test_publisher_request_consumed_after_its_deadline_fails_without_work(world: World) -> None:
    version = world.config.add(make_version(1))
    request = make_request(version, deadline_s=-1)
    app = await world.start_publisher()
    await world.harness.publish(request)

    row = await world.harness.wait_terminal(request.job.name)
    assert (row.state, row.error_reason, row.attempts, row.sequence) == ("FAILED", "TIMEOUT", 0, 2)
    # Failed at intake, not by the pipeline, and still counted among the jobs' outcomes.
    outcome = {"state": "FAILED", "reason": "TIMEOUT"}
    assert app.metrics.registry.get_sample_value("speako_publish_jobs_total", outcome) == 1
    [failed] = await world.harness.wait_events(request.job.name, 1)
    assert failed.sequence == 2 and failed.job.error.reason == config_pb2.PublishError.REASON_TIMEOUT
    assert world.config.calls == [] and world.runtime.calls == []


async def test_publisher_duplicate_and_late_deliveries_change_nothing(world: World) -> None:
    version = world.config.add(make_version(1))
    request = make_request(version)
    await world.start_publisher()
    await world.harness.publish(request, message_id="6b3c1f2e-1111-4aaa-8bbb-000000000001")
    await world.harness.wait_terminal(request.job.name)
    # The same delivery again, then another message for the finished job.
    await world.harness.publish(request, message_id="6b3c1f2e-1111-4aaa-8bbb-000000000001")
    await world.harness.publish(request, message_id="6b3c1f2e-1111-4aaa-8bbb-000000000002")
    follow_up = make_request(version)
    await world.harness.publish(follow_up)
    await world.harness.wait_terminal(follow_up.job.name)

    row = await world.harness.job(request.job.name)
    assert row is not None and (row.state, row.sequence, row.attempts) == ("PUBLISHED", 3, 1)
    # Each event once (in either order: consumers order a job's events by sequence, not arrival).
    assert sorted(e.sequence for e in world.harness.events_for(request.job.name)) == [2, 3]
    assert [v for v, _ in world.runtime.calls].count(version.name) == 2  # one per job, idempotent runtime
    assert len(world.runtime.applied) == 1


async def test_publisher_bundle_hash_mismatch_fails_internal_without_deploy(world: World) -> None:
    version = make_version(1)
    tampered = config_pb2.Version()
    tampered.CopyFrom(version)
    tampered.config.greetings.opening_greeting = "tampered"
    world.config.add(tampered)
    request = make_request(version)
    await world.start_publisher()
    await world.harness.publish(request)

    row = await world.harness.wait_terminal(request.job.name)
    assert (row.state, row.error_reason, row.attempts) == ("FAILED", "INTERNAL", 0)
    assert "hashes to" in row.error_message
    assert world.runtime.calls == []


async def test_publisher_missing_version_fails_internal_and_config_blips_are_retried(world: World) -> None:
    missing = make_request(make_version(7))
    version = world.config.add(make_version(1))
    world.config.script[version.name] = [Outcome(grpc.StatusCode.UNAVAILABLE, "config restarting")]
    ok = make_request(version)
    await world.start_publisher()
    await world.harness.publish(missing)
    await world.harness.publish(ok)

    row = await world.harness.wait_terminal(missing.job.name)
    assert (row.state, row.error_reason) == ("FAILED", "INTERNAL")
    assert "versions/7 not found" in row.error_message
    assert (await world.harness.wait_terminal(ok.job.name)).state == "PUBLISHED"
    assert world.config.calls.count(version.name) == 2


async def test_publisher_events_continue_the_publish_trace(world: World) -> None:
    version = world.config.add(make_version(1))
    request = make_request(version)
    trace_id = request.job.trace_id
    await world.start_publisher()
    await world.harness.publish(request, headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})

    events = await world.harness.wait_events(request.job.name, 2)
    for key, event, message_id in world.harness.events:
        if event.job.name == request.job.name:
            traceparent = world.harness.event_headers[message_id].get("traceparent", "")
            assert traceparent.split("-")[1] == trace_id, (key, traceparent)
    # PROCESSING and PUBLISHED, in either order: the relay publishes the rows it holds concurrently,
    # and consumers order a job's events by sequence, not by arrival.
    assert sorted(e.sequence for e in events) == [2, 3]
