"""A thin gRPC client of the platform for the benchmarks (stubs, agents, publishing, watching)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import grpc.aio

from bench.common import bearer, token
from speako.activation.v1 import activation_service_pb2 as act
from speako.activation.v1 import activation_service_pb2_grpc as act_grpc
from speako.config.v1 import config_service_pb2 as cfg
from speako.config.v1 import config_service_pb2_grpc as cfg_grpc
from speako.config.v1 import resources_pb2 as res
from speako.notifier.v1 import notifier_service_pb2 as ntf
from speako.notifier.v1 import notifier_service_pb2_grpc as ntf_grpc
from tests.factories import valid_config

TERMINAL = frozenset({res.PublishJob.STATE_PUBLISHED, res.PublishJob.STATE_FAILED, res.PublishJob.STATE_SUPERSEDED})
OPTIONS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]


def config_with(greeting_suffix: str, knowledge_bytes: int = 0) -> res.AgentConfig:
    """A valid config whose content differs by ``greeting_suffix`` (and an optional large knowledge base)."""
    config = valid_config(greeting=f"Thanks for calling {{business_name}}, this is {{agent_name}} ({greeting_suffix}).")
    if knowledge_bytes:
        per_article = 256 * 1024
        count = -(-knowledge_bytes // per_article)
        for i in range(count):
            body = (f"Article {i} of the knowledge base. " * (per_article // 32))[:per_article]
            config.knowledge.articles.add(title=f"Article {i}", body=body)
    return config


@dataclass
class PlatformClient:
    """Channels and stubs to one running platform, for one tenant."""

    config_addr: str
    notifier_addr: str
    activation_addr: str
    tenant: str = "bench"

    def __post_init__(self) -> None:
        self.md = bearer(token(["admin"], self.tenant))
        self.service_md = bearer(token(["service"], "*", subject="bench-gateway"))
        self._channels = [
            grpc.aio.insecure_channel(a, options=OPTIONS)
            for a in (self.config_addr, self.notifier_addr, self.activation_addr)
        ]
        self.config = cfg_grpc.ConfigServiceStub(self._channels[0])
        self.notifier = ntf_grpc.NotifierServiceStub(self._channels[1])
        self.activation = act_grpc.ActivationServiceStub(self._channels[2])

    async def close(self) -> None:
        """Close every channel."""
        await asyncio.gather(*(c.close() for c in self._channels))

    async def create_agent(self, agent_id: str, knowledge_bytes: int = 0) -> str:
        """Create an agent with a valid draft; returns the agent name."""
        agent = await self.config.CreateAgent(
            cfg.CreateAgentRequest(
                parent=f"tenants/{self.tenant}", agent_id=agent_id, agent=res.Agent(display_name=agent_id)
            ),
            metadata=self.md,
            timeout=30,
        )
        await self.edit(agent.name, "initial", knowledge_bytes)
        return agent.name

    async def edit(self, agent: str, suffix: str, knowledge_bytes: int = 0) -> None:
        """Replace the draft with a config that differs from earlier ones."""
        await self.config.UpdateDraft(
            cfg.UpdateDraftRequest(draft=res.Draft(name=f"{agent}/draft", config=config_with(suffix, knowledge_bytes))),
            metadata=self.md,
            timeout=60,
        )

    async def publish(self, agent: str) -> res.PublishJob:
        """PublishDraft (a fresh request_id)."""
        return await self.config.PublishDraft(
            cfg.PublishDraftRequest(name=f"{agent}/draft", request_id=str(uuid.uuid4())), metadata=self.md, timeout=30
        )

    async def watch_to_end(self, job_name: str, timeout: float = 60) -> list[res.PublishJob]:
        """WatchPublishJob until a terminal state; the states seen."""
        states = []
        call = self.notifier.WatchPublishJob(
            ntf.WatchPublishJobRequest(name=job_name), metadata=self.md, timeout=timeout
        )
        async for update in call:
            if update.heartbeat:
                continue
            states.append(update.job)
            if update.job.state in TERMINAL:
                call.cancel()
                break
        return states

    async def publish_and_wait(self, agent: str) -> res.PublishJob:
        """Publish the draft and return the job's terminal state."""
        job = await self.publish(agent)
        return (await self.watch_to_end(job.name))[-1]

    async def activate(self, agent: str, number: str) -> None:
        """Assign a phone number and activate the agent (it needs a live version)."""
        await self.activation.AssignPhoneNumber(
            act.AssignPhoneNumberRequest(name=agent, phone_number=number), metadata=self.md, timeout=30
        )
        await self.activation.ActivateAgent(act.ActivateAgentRequest(name=agent), metadata=self.md, timeout=30)

    async def route_call(self, number: str) -> object:
        """RouteCall as the telephony gateway would."""
        return await self.activation.RouteCall(
            act.RouteCallRequest(called_number=number, caller_number="+14155550199"),
            metadata=self.service_md,
            timeout=10,
        )
