"""Outgoing gRPC channels between services: service token, default deadline, tracing."""

from __future__ import annotations

import time
from typing import Any

import grpc
import grpc.aio
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from chassis import auth, telemetry
from chassis.settings import Settings

# A service token lives this long and is re-minted when half of it is gone.
SERVICE_TOKEN_TTL_S = 600.0


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


class _CallDefaults(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """Adds the bearer token and, when the caller set none, a deadline."""

    def __init__(self, token: ServiceToken, timeout_s: float) -> None:
        self._token = token
        self._timeout_s = timeout_s

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata["authorization"] = f"Bearer {self._token.get()}"
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout if details.timeout is not None else self._timeout_s,
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


def service_channel(addr: str, settings: Settings, *, caller: str) -> grpc.aio.Channel:
    """A channel from service ``caller`` (e.g. speako-publisher) to ``addr``."""
    interceptors: list[Any] = [
        *aio_client_interceptors(tracer_provider=telemetry.tracer_provider(caller)),
        _CallDefaults(ServiceToken(settings.auth_secret, caller), settings.rpc_timeout_s),
    ]
    return grpc.aio.insecure_channel(addr, options=channel_options(settings), interceptors=interceptors)
