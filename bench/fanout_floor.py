"""The fan-out floor: a bare grpc.aio server streaming to the same watchers as the platform's fan-out.

It serves ``speako.notifier.v1.NotifierService/WatchPublishJobs`` with nothing but grpc.aio: no
interceptors, no token check, no store, no hub. Each open stream is an ``asyncio.Queue`` that the
server fills with one publish's state changes, each a ``PublishJobUpdate`` serialized once for all
streams, the job's ``update_time`` set when the change is handed to the streams. The watchers are
the platform fan-out's own (the same program, C++ or grpc.aio, split into as many processes,
parsing the same way; see ``bench.platform_bench.watch_streams``). What the platform's figure adds
to this one is
the way of each change to the notifier (commit, broker hop, the notifier's commit), the notifier's
own work per delivery, and the CPU the rest of the publish takes on the same cores meanwhile.

``bench.FanoutFloor/Publish`` (a request of JSON ``{"gaps_ms": [a, b]}``) sends one publish's three
changes (SUBMITTED, PROCESSING, PUBLISHED) to every open stream, ``a`` then ``b`` ms apart, and
answers once the last one is handed over.

Run as a separate process: ``python -m bench.fanout_floor PORT``; prints ``READY <port>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import grpc.aio
import uvloop
from google.protobuf.timestamp_pb2 import Timestamp

from bench.common import server_process
from chassis.server import freeze_startup_heap
from speako.config.v1 import resources_pb2 as res
from speako.notifier.v1 import resources_pb2 as ntf_res

WATCH_SERVICE = "speako.notifier.v1.NotifierService"
CONTROL_SERVICE = "bench.FanoutFloor"
PUBLISH = f"/{CONTROL_SERVICE}/Publish"
STATES = (res.PublishJob.STATE_SUBMITTED, res.PublishJob.STATE_PROCESSING, res.PublishJob.STATE_PUBLISHED)


def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return stamp


class FloorServer:
    """Open streams and the publishes sent to them."""

    def __init__(self) -> None:
        self._streams: set[asyncio.Queue[bytes]] = set()
        self._position = 0

    async def watch(self, request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        """One watcher: every update handed to the streams while it is open."""
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._streams.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._streams.discard(queue)

    async def publish(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Hand one publish's three state changes to every open stream, the given gaps apart."""
        gaps = [g / 1000 for g in json.loads(request)["gaps_ms"]]
        agent = "tenants/bench-fanout/agents/fanout"
        job = res.PublishJob(
            name=f"{agent}/publishJobs/{uuid.uuid4()}",
            version=f"{agent}/versions/{self._position + 1}",
            create_time=_now(),
            changed_sections=["greetings"],
            requester="bench@speako",
            trace_id=uuid.uuid4().hex,
        )
        for i, state in enumerate(STATES):
            if i:
                await asyncio.sleep(gaps[i - 1])
            job.state = state
            job.update_time.CopyFrom(_now())
            self._position += 1
            data = ntf_res.PublishJobUpdate(job=job, resume_token=f"floor-{self._position:016d}").SerializeToString()
            for queue in self._streams:
                queue.put_nowait(data)
        return b""


async def serve(port: int) -> None:
    """Serve until killed."""
    floor = FloorServer()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                WATCH_SERVICE, {"WatchPublishJobs": grpc.unary_stream_rpc_method_handler(floor.watch)}
            ),
            grpc.method_handlers_generic_handler(
                CONTROL_SERVICE, {"Publish": grpc.unary_unary_rpc_method_handler(floor.publish)}
            ),
        )
    )
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    freeze_startup_heap()  # as every service does
    print(f"READY {bound}", flush=True)
    await server.wait_for_termination()


def floor_server() -> contextlib.AbstractAsyncContextManager[tuple[str, int]]:
    """Run the floor server in its own process; yields its address and process id."""
    return server_process("bench.fanout_floor")


async def send_publish(channel: grpc.aio.Channel, gaps_ms: tuple[float, float]) -> Any:
    """Ask the floor server for one publish's three changes."""
    return await channel.unary_unary(PUBLISH)(json.dumps({"gaps_ms": list(gaps_ms)}).encode(), timeout=10)


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
