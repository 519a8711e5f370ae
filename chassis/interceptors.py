"""Server interceptors: error mapping and authentication/authorisation.

grpc.aio interceptors only see the method name and metadata, not the request, so both wrap the
handler's behaviour instead; unary and server-streaming handlers are supported (the platform has
no client-streaming RPCs).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from chassis import auth, errors, telemetry

log = logging.getLogger("speako.rpc")

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]
Guard = Callable[[Any, grpc.aio.ServicerContext], Awaitable[None]]


def rewrap_handler(handler: grpc.RpcMethodHandler, unary: Callable[..., Any], stream: Callable[..., Any]) -> Any:
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            unary(handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            stream(handler.unary_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


async def _abort_for(exc: BaseException, context: grpc.aio.ServicerContext, method: str) -> None:
    if isinstance(exc, errors.ServiceError):
        await context.abort_with_status(exc.to_status())
    trace_id = telemetry.current_trace_id()
    log.exception("unexpected error in %s (trace_id=%s)", method, trace_id, exc_info=exc)
    await context.abort_with_status(errors.internal_status(trace_id))


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Turns ServiceError into its rich status and anything unexpected into a bare INTERNAL."""

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method

        def unary(behaviour: Behaviour) -> Behaviour:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    return await behaviour(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _abort_for(exc, context, method)

            return run

        def stream(behaviour: Behaviour) -> Behaviour:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                try:
                    async for item in behaviour(request, context):
                        yield item
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _abort_for(exc, context, method)

            return run

        return rewrap_handler(handler, unary, stream)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every call but health/reflection and applies the service's policy."""

    def __init__(self, authorizer: auth.Authorizer) -> None:
        self._authorizer = authorizer

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        method = details.method
        if handler is None or self._authorizer.is_open(method):
            return handler
        metadata = {k: v for k, v in (details.invocation_metadata or ())}
        authorizer = self._authorizer

        def admit(request: Any) -> auth.Principal:
            principal = authorizer.authenticate(metadata)
            authorizer.authorize(method, principal, request)
            return principal

        def unary(behaviour: Behaviour) -> Behaviour:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
                auth.set_principal(admit(request))
                return await behaviour(request, context)

            return run

        def stream(behaviour: Behaviour) -> Behaviour:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                auth.set_principal(admit(request))
                async for item in behaviour(request, context):
                    yield item

            return run

        return rewrap_handler(handler, unary, stream)
