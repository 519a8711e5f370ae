"""Outgoing gRPC channels between services: service token, default deadline, tracing."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message
from opentelemetry import propagate, trace

from chassis import auth, telemetry
from chassis.settings import Settings

# A service token lives this long and is re-minted when half of it is gone.
SERVICE_TOKEN_TTL_S = 600.0

R = TypeVar("R", bound=Message)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def channel_options(settings: Settings) -> list[tuple[str, Any]]:
    """Message size limits shared by servers and clients."""
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]


class ServiceToken:
    """Mints and caches the token a service presents to another (role ``service``, every tenant)."""

    def __init__(self, secret: str, subject: str) -> None:
        self._secret = secret
        self._subject = subject
        self._token = ""
        self._minted_at = 0.0

    def get(self) -> str:
        now = time.monotonic()
        if not self._token or now - self._minted_at > SERVICE_TOKEN_TTL_S / 2:
            self._token = auth.mint_token(
                self._secret,
                subject=self._subject,
                tenant=auth.ALL_TENANTS,
                roles=["service"],
                ttl_s=SERVICE_TOKEN_TTL_S,
            )
            self._minted_at = now
        return self._token


class ServiceClient:
    """Calls from one service to another: a service token, a default deadline and a CLIENT span.

    It does inline what two client interceptors (OpenTelemetry's and a defaults one) did: grpc.aio
    runs an intercepted call in an extra task behind a wrapper call object, which cost ~90 us of
    client CPU and ~105 us of latency per call (bench: an echo call, 114 -> 205 us of CPU).
    """

    def __init__(self, addr: str, settings: Settings, *, caller: str) -> None:
        self.channel = grpc.aio.insecure_channel(addr, options=channel_options(settings))
        self._token = ServiceToken(settings.auth_secret, caller)
        self._timeout_s = settings.rpc_timeout_s
        self._tracer = telemetry.tracer(caller)

    def unary(self, path: str, response_type: type[R]) -> Callable[[Message, float | None], Awaitable[R]]:
        """An async callable for the unary method ``path`` (``/package.Service/Method``)."""
        call = self.channel.unary_unary(
            path, request_serializer=_serialize, response_deserializer=response_type.FromString
        )
        service, _, method = path[1:].partition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}

        async def invoke(request: Message, timeout_s: float | None = None) -> R:
            metadata = [("authorization", f"Bearer {self._token.get()}")]
            # The span's error status is set below, from the gRPC status, not again from the exception.
            with self._tracer.start_as_current_span(
                path, kind=trace.SpanKind.CLIENT, attributes=attributes, set_status_on_exception=False
            ) as span:
                carrier: dict[str, str] = {}
                propagate.inject(carrier)
                metadata.extend(carrier.items())
                try:
                    response: R = await call(
                        request, timeout=self._timeout_s if timeout_s is None else timeout_s, metadata=metadata
                    )
                except grpc.aio.AioRpcError as exc:
                    span.set_attribute("rpc.grpc.status_code", exc.code().value[0])
                    span.set_status(trace.Status(trace.StatusCode.ERROR, f"{exc.code().name}: {exc.details()}"))
                    raise
                span.set_attribute("rpc.grpc.status_code", 0)
                return response

        return invoke

    async def close(self) -> None:
        """Close the channel."""
        await self.channel.close()
