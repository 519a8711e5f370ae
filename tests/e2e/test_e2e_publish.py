"""The walking skeleton: one publish through all four services running as separate processes."""

from __future__ import annotations

import uuid

from speako.activation.v1 import activation_service_pb2 as act
from speako.activation.v1 import activation_service_pb2_grpc as act_grpc
from speako.config.v1 import config_service_pb2 as cfg
from speako.config.v1 import config_service_pb2_grpc as cfg_grpc
from speako.config.v1 import resources_pb2 as res
from speako.notifier.v1 import notifier_service_pb2 as ntf
from speako.notifier.v1 import notifier_service_pb2_grpc as ntf_grpc
from tests.conftest import bearer
from tests.factories import valid_config

TERMINAL = {res.PublishJob.STATE_PUBLISHED, res.PublishJob.STATE_FAILED, res.PublishJob.STATE_SUPERSEDED}


async def watch_to_end(notifier, job_name, md):
    states = []
    async for update in notifier.WatchPublishJob(ntf.WatchPublishJobRequest(name=job_name), metadata=md, timeout=60):
        if update.heartbeat:
            continue
        states.append(update.job)
        if update.job.state in TERMINAL:
            break
    return states


async def test_publish_reaches_published_and_goes_live(channels, token):
    md = bearer(token(["admin"], "acme", "alice@acme"))
    config = cfg_grpc.ConfigServiceStub(channels["config"])
    notifier = ntf_grpc.NotifierServiceStub(channels["notifier"])
    activation = act_grpc.ActivationServiceStub(channels["activation"])

    agent = await config.CreateAgent(
        cfg.CreateAgentRequest(
            parent="tenants/acme", agent_id="front-desk", agent=res.Agent(display_name="Front desk")
        ),
        metadata=md,
        timeout=10,
    )
    assert agent.name == "tenants/acme/agents/front-desk"
    draft = await config.UpdateDraft(
        cfg.UpdateDraftRequest(draft=res.Draft(name=f"{agent.name}/draft", config=valid_config())),
        metadata=md,
        timeout=10,
    )
    assert draft.has_unpublished_changes

    job = await config.PublishDraft(
        cfg.PublishDraftRequest(name=draft.name, request_id=str(uuid.uuid4())), metadata=md, timeout=10
    )
    assert job.state == res.PublishJob.STATE_SUBMITTED
    assert job.version == f"{agent.name}/versions/1"
    assert job.requester == "alice@acme"
    assert len(job.trace_id) == 32

    states = await watch_to_end(notifier, job.name, md)
    assert states[-1].state == res.PublishJob.STATE_PUBLISHED, states[-1]
    seen = [s.state for s in states]
    assert seen == sorted(seen), f"states went backwards: {seen}"
    assert states[-1].attempts >= 1

    status = await activation.GetAgentStatus(act.GetAgentStatusRequest(name=agent.name), metadata=md, timeout=10)
    assert status.live_version == job.version

    # A second publish of changed content goes live as version 2.
    changed = valid_config(greeting="Hello from {business_name}!")
    await config.UpdateDraft(
        cfg.UpdateDraftRequest(draft=res.Draft(name=draft.name, config=changed)), metadata=md, timeout=10
    )
    job2 = await config.PublishDraft(cfg.PublishDraftRequest(name=draft.name), metadata=md, timeout=10)
    assert job2.version == f"{agent.name}/versions/2"
    assert "greetings" in job2.changed_sections
    states2 = await watch_to_end(notifier, job2.name, md)
    assert states2[-1].state == res.PublishJob.STATE_PUBLISHED
    status = await activation.GetAgentStatus(act.GetAgentStatusRequest(name=agent.name), metadata=md, timeout=10)
    assert status.live_version == job2.version
