"""A RuntimeService the publisher deploys to (SPEAKO_RUNTIME_ADDR) that misbehaves on demand.

By default it forwards every DeployBundle to the real activation service. A behaviour set for an
agent makes it fail (transiently or for good), hang, or answer slowly for that agent's bundles.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import grpc
import grpc.aio

from speako.activation.v1 import resources_pb2, runtime_service_pb2, runtime_service_pb2_grpc


@dataclass(frozen=True)
class Behaviour:
    """What to do with an agent's bundles."""

    # Fail this many calls per version with UNAVAILABLE before forwarding.
    unavailable_first: int = 0
    # Always reject the bundle (INVALID_ARGUMENT: the publisher fails the job with INVALID_CONFIG).
    reject: bool = False
    # Never answer (the publisher's per-attempt deadline cancels the call).
    hang: bool = False
    # Forward after this delay.
    delay_s: float = 0.0


class FakeRuntime(runtime_service_pb2_grpc.RuntimeServiceServicer):
    """Forwards to the real runtime unless told otherwise per agent."""

    def __init__(self) -> None:
        self.behaviours: dict[str, Behaviour] = {}
        self.calls: Counter[str] = Counter()
        self.upstream_addr = ""
        self._upstream: runtime_service_pb2_grpc.RuntimeServiceStub | None = None
        self._channel: grpc.aio.Channel | None = None
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self) -> str:
        """Serve on a free port; returns the address."""
        self._server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
        runtime_service_pb2_grpc.add_RuntimeServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return f"127.0.0.1:{self.port}"

    def forward_to(self, addr: str) -> None:
        """Point pass-through calls at the real runtime."""
        self.upstream_addr = addr
        self._channel = grpc.aio.insecure_channel(
            addr, options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        )
        self._upstream = runtime_service_pb2_grpc.RuntimeServiceStub(self._channel)

    async def stop(self) -> None:
        """Stop serving and close the upstream channel."""
        if self._server is not None:
            await self._server.stop(0)
        if self._channel is not None:
            await self._channel.close()

    async def DeployBundle(
        self, request: runtime_service_pb2.DeployBundleRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Deployment:
        agent = request.bundle.agent
        key = f"{agent}@{request.bundle.version}"
        self.calls[key] += 1
        behaviour = self.behaviours.get(agent, Behaviour())
        if behaviour.hang:
            await asyncio.sleep(3600)
        if behaviour.reject:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "fake runtime: the bundle is rejected")
        if self.calls[key] <= behaviour.unavailable_first:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "fake runtime: temporarily unavailable")
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)
            if context.done():
                # The caller gave up: a real runtime must not deploy behind its back either.
                await context.abort(grpc.StatusCode.CANCELLED, "fake runtime: the caller gave up")
        assert self._upstream is not None
        metadata = [(k, v) for k, v in context.invocation_metadata() or () if k == "authorization"]
        remaining = context.time_remaining()
        try:
            return await self._upstream.DeployBundle(
                request, metadata=metadata, timeout=remaining if remaining is not None else 10
            )
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or "")
            raise
