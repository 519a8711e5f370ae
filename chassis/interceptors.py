"""The server call pipeline: metrics, error mapping and authentication/authorisation.

grpc.aio interceptors only see the method name and metadata, not the request, so the pipeline
wraps each handler's behaviour instead. The three concerns share one wrapper, built once per
method and cached: per call this costs one extra coroutine frame, not three stacked interceptors
(RouteCall's budget is a few hundred microseconds). Unary and server-streaming handlers are
supported; the platform has no client-streaming RPCs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import grpc
import grpc.aio

from chassis import auth, errors, telemetry
from chassis.metrics import ServiceMetrics

log = logging.getLogger("speako.rpc")

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]

# Failures of the database connection (not of a query): the caller should retry, so UNAVAILABLE.
DATABASE_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    # Raised by a transaction's COMMIT/ROLLBACK on a connection the server terminated mid-call
    # ("cannot switch to state 15; another operation is in progress"); seen in the fault suite
    # under pg_terminate_backend, where it turned a GetVersion into INTERNAL and failed a publish.
    asyncpg.InternalClientError,
    ConnectionError,
    OSError,
)


def rewrap_handler(handler: grpc.RpcMethodHandler, unary: Callable[..., Any], stream: Callable[..., Any]) -> Any:
    """A handler like ``handler`` whose behaviour is wrapped by ``unary`` or ``stream``."""
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


async def abort_for(exc: BaseException, context: grpc.aio.ServicerContext, method: str) -> None:
    """Abort the call with the status that ``exc`` deserves (never UNKNOWN)."""
    if isinstance(exc, errors.ServiceError):
        await context.abort_with_status(exc.to_status())
    if isinstance(exc, DATABASE_UNAVAILABLE):
        log.warning("%s: database unavailable: %r", method, exc)
        await context.abort_with_status(
            errors.Unavailable("the database is unavailable; retry shortly", reason="DATABASE_UNAVAILABLE").to_status()
        )
    trace_id = telemetry.current_trace_id()
    log.error("unexpected error in %s (trace_id=%s)", method, trace_id, exc_info=exc)
    await context.abort_with_status(errors.internal_status(trace_id))


def _code_of(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "OK"


class ServerPipeline(grpc.aio.ServerInterceptor):
    """Wraps every handler once: record metrics, map errors, authenticate and authorise."""

    def __init__(self, authorizer: auth.Authorizer, metrics: ServiceMetrics) -> None:
        self._authorizer = authorizer
        self._metrics = metrics
        self._wrapped: dict[str, Any] = {}

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        method = details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = await continuation(details)
            if handler is None:
                return None
            wrapped = self._wrapped[method] = self._wrap(method, handler)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> Any:
        authorizer = self._authorizer
        guarded = not authorizer.is_open(method)
        short = method.rsplit("/", 1)[-1]
        duration = self._metrics.rpc_duration
        active = self._metrics.active_streams.labels(short)

        def admit(request: Any, context: grpc.aio.ServicerContext) -> None:
            principal = authorizer.authenticate(dict(context.invocation_metadata() or ()))
            authorizer.authorize(method, principal, request)
            auth.set_principal(principal)

        def unary(behaviour: Behaviour) -> Behaviour:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
                start = time.perf_counter()
                try:
                    if guarded:
                        admit(request, context)
                    return await behaviour(request, context)
                except (grpc.aio.AbortError, asyncio.CancelledError):
                    raise
                except Exception as exc:
                    await abort_for(exc, context, method)
                finally:
                    duration.labels(short, _code_of(context)).observe(time.perf_counter() - start)

            return run

        def stream(behaviour: Behaviour) -> Behaviour:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                start = time.perf_counter()
                active.inc()
                try:
                    if guarded:
                        admit(request, context)
                    async for item in behaviour(request, context):
                        yield item
                except (grpc.aio.AbortError, asyncio.CancelledError):
                    raise
                except Exception as exc:
                    await abort_for(exc, context, method)
                finally:
                    active.dec()
                    duration.labels(short, _code_of(context)).observe(time.perf_counter() - start)

            return run

        return rewrap_handler(handler, unary, stream)
