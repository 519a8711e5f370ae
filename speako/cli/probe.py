"""Health probing of running services (used by `speako health`, compose and the tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc


async def service_status(addr: str, timeout: float, service: str = "") -> str:
    """SERVING / NOT_SERVING / ... or UNREACHABLE for one address."""
    async with grpc.aio.insecure_channel(addr) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.aio.AioRpcError as exc:
            return "UNREACHABLE" if exc.code() == grpc.StatusCode.UNAVAILABLE else exc.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def check_health(addresses: Iterable[str], timeout: float) -> dict[str, str]:
    """Status of each address, probed concurrently."""
    addresses = list(addresses)
    statuses = await asyncio.gather(*(service_status(a, timeout) for a in addresses))
    return dict(zip(addresses, statuses, strict=True))


async def wait_until_serving(addresses: Iterable[str], deadline_s: float) -> dict[str, str]:
    """Poll until every address is SERVING or the deadline passes; returns the last statuses."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        statuses = await check_health(addresses, timeout=1.0)
        if all(s == "SERVING" for s in statuses.values()) or loop.time() > end:
            return statuses
        await asyncio.sleep(0.2)
