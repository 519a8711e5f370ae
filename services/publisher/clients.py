"""gRPC adapters for the publisher's two dependencies: config (versions) and the runtime (deploys).

They turn grpc errors into RemoteError (code name, message, offending field) so the pipeline and
its tests never handle grpc types.
"""

from __future__ import annotations

from typing import Protocol

import grpc.aio
from google.rpc import error_details_pb2, status_pb2

from chassis.clients import ServiceClient
from speako.activation.v1 import resources_pb2 as activation_pb2
from speako.activation.v1 import runtime_service_pb2
from speako.config.v1 import config_service_pb2
from speako.config.v1 import resources_pb2 as config_pb2

_DETAILS_KEY = "grpc-status-details-bin"


class RemoteError(Exception):
    """A failed call: gRPC code name, the server's message and the field it blamed (if any)."""

    def __init__(self, code: str, message: str, field: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field

    @classmethod
    def from_rpc(cls, error: grpc.aio.AioRpcError) -> RemoteError:
        """Translate an AioRpcError, reading google.rpc.BadRequest for the field."""
        return cls(error.code().name, error.details() or "", _first_field(error))


def _first_field(error: grpc.aio.AioRpcError) -> str:
    for key, value in error.trailing_metadata() or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                if bad.field_violations:
                    return bad.field_violations[0].field
    return ""


class VersionSource(Protocol):
    """Where the publisher reads immutable versions."""

    async def get_version(self, name: str, timeout_s: float) -> config_pb2.Version: ...


class Runtime(Protocol):
    """Where the publisher deploys bundles."""

    async def deploy(self, bundle: activation_pb2.Bundle, timeout_s: float) -> activation_pb2.Deployment: ...


class GrpcVersionSource:
    """ConfigService.GetVersion from the publisher's client of config."""

    def __init__(self, client: ServiceClient) -> None:
        self._get_version = client.unary("/speako.config.v1.ConfigService/GetVersion", config_pb2.Version)

    async def get_version(self, name: str, timeout_s: float) -> config_pb2.Version:
        """Read a version; RemoteError on any failure."""
        try:
            request = config_service_pb2.GetVersionRequest(name=name)
            return await self._get_version(request, timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise RemoteError.from_rpc(exc) from None


class GrpcRuntime:
    """RuntimeService.DeployBundle from the publisher's client of the runtime."""

    def __init__(self, client: ServiceClient) -> None:
        self._deploy = client.unary("/speako.activation.v1.RuntimeService/DeployBundle", activation_pb2.Deployment)

    async def deploy(self, bundle: activation_pb2.Bundle, timeout_s: float) -> activation_pb2.Deployment:
        """Deploy a bundle; RemoteError on any failure."""
        try:
            return await self._deploy(runtime_service_pb2.DeployBundleRequest(bundle=bundle), timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise RemoteError.from_rpc(exc) from None
