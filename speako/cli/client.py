"""gRPC access for the CLI: one channel per service, the caller's token, a deadline on every call."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message

from speako.activation.v1 import activation_service_pb2_grpc
from speako.cli import refs
from speako.cli.errors import ServerError, hint, report_from_rpc_error
from speako.config.v1 import config_service_pb2_grpc
from speako.notifier.v1 import notifier_service_pb2_grpc

_STUBS = {
    "config": config_service_pb2_grpc.ConfigServiceStub,
    "notifier": notifier_service_pb2_grpc.NotifierServiceStub,
    "activation": activation_service_pb2_grpc.ActivationServiceStub,
}
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass
class Client:
    """What every command needs to talk to the platform (built once from the global options)."""

    addrs: dict[str, str]
    token: str | None
    timeout: float
    _channels: dict[str, grpc.Channel] = field(default_factory=dict)

    @property
    def tenant(self) -> str | None:
        """The single tenant of the token, used to expand references that leave it out."""
        return refs.token_tenant(self.token)

    def _metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")] if self.token else []

    def stub(self, service: str) -> Any:
        channel = self._channels.get(service)
        if channel is None:
            channel = grpc.insecure_channel(
                self.addrs[service],
                options=[
                    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ],
            )
            self._channels[service] = channel
        return _STUBS[service](channel)

    def error(self, service: str, err: grpc.RpcError) -> ServerError:
        """The ServerError to raise for a failed call to ``service``."""
        report = report_from_rpc_error(err)
        return ServerError(report, hint(report, service, self.addrs[service], self.timeout))

    def call(self, service: str, method: str, request: Message, timeout: float | None = None) -> Any:
        """One unary RPC with the token and a deadline; failures raise ServerError."""
        fn = getattr(self.stub(service), method)
        try:
            return fn(request, metadata=self._metadata(), timeout=timeout or self.timeout)
        except grpc.RpcError as err:
            raise self.error(service, err) from None

    def stream(self, service: str, method: str, request: Message, timeout: float) -> Any:
        """Open a server stream with a deadline; iterate it, cancel() it to stop."""
        fn = getattr(self.stub(service), method)
        return fn(request, metadata=self._metadata(), timeout=timeout)

    def pages(self, service: str, method: str, request: Any, items: str, limit: int) -> tuple[list[Any], str]:
        """Up to ``limit`` items across pages; returns them and the token of the rest ('' if none)."""
        out: list[Any] = []
        while True:
            request.page_size = min(max(limit - len(out), 1), 1000)
            response = self.call(service, method, request)
            out.extend(getattr(response, items))
            token = response.next_page_token
            if not token or len(out) >= limit:
                return out[:limit], token
            request.page_token = token

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()


def iterate(client: Client, service: str, call: Any) -> Iterator[Any]:
    """Iterate a stream, turning its failure into a ServerError (cancellation ends quietly)."""
    try:
        yield from call
    except grpc.RpcError as err:
        if isinstance(err, grpc.Call) and err.code() == grpc.StatusCode.CANCELLED:
            return
        raise client.error(service, err) from None
