"""A bare grpc.aio echo server (no interceptors): the floor a unary RPC pays on this machine.

Run as a separate process: ``python -m bench.echo_server PORT``; prints READY when serving.
"""

from __future__ import annotations

import sys

import grpc
import grpc.aio

from bench.common import run_server
from chassis.server import freeze_startup_heap

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def serve(port: int) -> None:
    """Serve the echo method until killed."""
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {"Echo": grpc.unary_unary_rpc_method_handler(_echo)},
    )
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    freeze_startup_heap()  # as every service does, so that the floor is measured the same way
    print(f"READY {bound}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    run_server(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
