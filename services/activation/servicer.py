"""gRPC handlers of ActivationService and RuntimeService: protobuf <-> use cases, errors mapped."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import grpc.aio
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from chassis import errors
from chassis.names import AgentName, CallName, VersionName
from services.activation.calls import CallsNotRecorded
from services.activation.domain.deploy import verify_bundle
from services.activation.domain.errors import (
    DeployContended,
    InvalidBundle,
    InvalidPhoneNumber,
    NumberNotHeld,
    NumberTaken,
    PreconditionsUnmet,
    RequestIdReused,
    Superseded,
    UnknownCall,
    UnknownNumber,
)
from services.activation.domain.lifecycle import AgentState
from services.activation.domain.phone import parse_e164
from services.activation.domain.status import AgentStatusView, CallRecord, DeploymentView
from services.activation.service import Activation, RequestKey
from services.config.domain.canonical import canonical_bytes, canonical_sha256
from speako.activation.v1 import (
    activation_service_pb2,
    activation_service_pb2_grpc,
    resources_pb2,
    runtime_service_pb2,
    runtime_service_pb2_grpc,
)

_STATES = {
    AgentState.DRAFT: resources_pb2.AgentStatus.STATE_DRAFT,
    AgentState.ACTIVE: resources_pb2.AgentStatus.STATE_ACTIVE,
    AgentState.INACTIVE: resources_pb2.AgentStatus.STATE_INACTIVE,
}


@contextmanager
def domain_errors() -> Iterator[None]:
    """Translate domain refusals into chassis errors (the interceptor maps those to status)."""
    try:
        yield
    except InvalidBundle as exc:
        raise errors.InvalidArgument(exc.message, exc.field_violations, reason="BUNDLE_REJECTED") from None
    except Superseded as exc:
        live = f"{exc.agent}/versions/{exc.live_version}"
        raise errors.FailedPrecondition(
            f"{exc}; live never goes backwards",
            precondition_violations=[
                ("NEWER_VERSION_LIVE", live, f"{live} is live; version {exc.offered_version} is older")
            ],
            reason="SUPERSEDED",
        ) from None
    except InvalidPhoneNumber as exc:
        raise errors.InvalidArgument(str(exc), [(exc.field, exc.reason)]) from None
    except NumberTaken as exc:
        raise errors.AlreadyExists(str(exc), resource_name=exc.number, resource_type="phone_number") from None
    except NumberNotHeld as exc:
        raise errors.NotFound(str(exc), resource_name=exc.number, resource_type="phone_number") from None
    except UnknownNumber as exc:
        raise errors.NotFound(str(exc), resource_name=exc.number, resource_type="phone_number") from None
    except UnknownCall as exc:
        raise errors.NotFound(str(exc), resource_name=exc.name, resource_type="call") from None
    except PreconditionsUnmet as exc:
        raise errors.FailedPrecondition(
            exc.message,
            precondition_violations=[(v.type, v.subject, v.description) for v in exc.violations],
        ) from None
    except RequestIdReused as exc:
        raise errors.InvalidArgument(
            str(exc), [("request_id", "already used for a different request; send a new UUID")]
        ) from None
    except (CallsNotRecorded, DeployContended) as exc:
        raise errors.Unavailable(str(exc)) from None
    # Database outages need no case here: the chassis pipeline maps them to UNAVAILABLE for every service.


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    # Integer arithmetic: exact to the microsecond, and cheaper than Timestamp.FromDatetime (hot path).
    if value is None:
        return None
    micros = (value - _EPOCH) // _MICROSECOND
    return timestamp_pb2.Timestamp(seconds=micros // 1_000_000, nanos=(micros % 1_000_000) * 1000)


def status_pb(status: AgentStatusView) -> resources_pb2.AgentStatus:
    """AgentStatusView -> AgentStatus."""
    return resources_pb2.AgentStatus(
        name=status.name,
        state=_STATES[status.state],
        live_version=status.live_version or "",
        phone_numbers=status.phone_numbers,
        active_calls=status.active_calls,
        active_calls_by_version=[
            resources_pb2.VersionCalls(version=v, active_calls=n) for v, n in status.active_calls_by_version
        ],
        update_time=_timestamp(status.update_time),
    )


def call_pb(call: CallRecord) -> resources_pb2.Call:
    """CallRecord -> Call."""
    return resources_pb2.Call(
        name=call.name,
        agent=call.agent,
        version=call.version,
        bundle_sha256=call.bundle_sha256,
        start_time=_timestamp(call.start_time),
        end_time=_timestamp(call.end_time),
        state=resources_pb2.Call.STATE_ACTIVE if call.end_time is None else resources_pb2.Call.STATE_ENDED,
        called_number=call.called_number,
        caller_number=call.caller_number,
    )


def deployment_pb(deployment: DeploymentView) -> resources_pb2.Deployment:
    """DeploymentView -> Deployment."""
    return resources_pb2.Deployment(
        agent=deployment.agent,
        version=deployment.version,
        bundle_sha256=deployment.bundle_sha256,
        deploy_time=_timestamp(deployment.deploy_time),
        live_version=deployment.live_version,
    )


def request_key(method: str, request: Message) -> RequestKey | None:
    """The idempotency key of a mutating request (None without request_id)."""
    raw = getattr(request, "request_id")  # noqa: B009 - every mutating request has one
    if not raw:
        return None
    try:
        request_id = uuid.UUID(raw)
    except ValueError:
        raise errors.InvalidArgument(
            f"request_id {raw[:100]!r} is not a UUID", [("request_id", "must be a UUID")]
        ) from None
    content = type(request)()
    content.CopyFrom(request)
    content.ClearField("request_id")
    fingerprint = hashlib.sha256(content.SerializeToString(deterministic=True)).hexdigest()
    return RequestKey(request_id, method, fingerprint)


def _call_id(name: str) -> uuid.UUID:
    parsed = CallName.parse(name, "name")
    try:
        return uuid.UUID(parsed.call_id)
    except ValueError:
        # Well-formed but never issued by RouteCall: no such call.
        raise UnknownCall(name) from None


class ActivationServicer(activation_service_pb2_grpc.ActivationServiceServicer):
    """speako.activation.v1.ActivationService."""

    def __init__(self, activation: Activation) -> None:
        self._activation = activation

    async def GetAgentStatus(
        self, request: activation_service_pb2.GetAgentStatusRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.AgentStatus:
        agent = AgentName.parse(request.name, "name")
        with domain_errors():
            return status_pb(await self._activation.status(agent))

    async def AssignPhoneNumber(
        self, request: activation_service_pb2.AssignPhoneNumberRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.AgentStatus:
        agent = AgentName.parse(request.name, "name")
        with domain_errors():
            number = parse_e164(request.phone_number, "phone_number")
            key = request_key("AssignPhoneNumber", request)
            return status_pb(await self._activation.assign_number(agent, number, key))

    async def ReleasePhoneNumber(
        self, request: activation_service_pb2.ReleasePhoneNumberRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.AgentStatus:
        agent = AgentName.parse(request.name, "name")
        with domain_errors():
            number = parse_e164(request.phone_number, "phone_number")
            key = request_key("ReleasePhoneNumber", request)
            return status_pb(await self._activation.release_number(agent, number, key))

    async def ActivateAgent(
        self, request: activation_service_pb2.ActivateAgentRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.AgentStatus:
        agent = AgentName.parse(request.name, "name")
        key = request_key("ActivateAgent", request)
        with domain_errors():
            return status_pb(await self._activation.activate(agent, key))

    async def DeactivateAgent(
        self, request: activation_service_pb2.DeactivateAgentRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.AgentStatus:
        agent = AgentName.parse(request.name, "name")
        key = request_key("DeactivateAgent", request)
        with domain_errors():
            return status_pb(await self._activation.deactivate(agent, key))

    async def RouteCall(
        self, request: activation_service_pb2.RouteCallRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Call:
        with domain_errors():
            called = parse_e164(request.called_number, "called_number")
            # Withheld caller ids are common; when present it must be a number.
            caller = parse_e164(request.caller_number, "caller_number") if request.caller_number else ""
            return call_pb(await self._activation.route_call(called, caller))

    async def GetCall(
        self, request: activation_service_pb2.GetCallRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Call:
        with domain_errors():
            call = await self._activation.get_call(_call_id(request.name))
            if call is None:
                raise UnknownCall(request.name)
            return call_pb(call)

    async def EndCall(
        self, request: activation_service_pb2.EndCallRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Call:
        with domain_errors():
            call = await self._activation.end_call(_call_id(request.name))
            if call is None:
                raise UnknownCall(request.name)
            return call_pb(call)


class RuntimeServicer(runtime_service_pb2_grpc.RuntimeServiceServicer):
    """speako.activation.v1.RuntimeService: the publisher's deploy target."""

    def __init__(self, activation: Activation) -> None:
        self._activation = activation

    async def DeployBundle(
        self, request: runtime_service_pb2.DeployBundleRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Deployment:
        if not request.HasField("bundle"):
            raise errors.InvalidArgument("bundle is required", [("bundle", "is required")])
        bundle = request.bundle
        agent = AgentName.parse(bundle.agent, "bundle.agent")
        version = VersionName.parse(bundle.version, "bundle.version")
        has_config = bundle.HasField("config")
        # Serialised once: hashed to verify the bundle, and stored as it is (5 MB configs cost ~40 ms each way).
        canonical = canonical_bytes(bundle.config)
        with domain_errors():
            verified = verify_bundle(
                agent=str(agent),
                version=str(version),
                version_agent=str(version.agent_name),
                version_number=version.number,
                has_config=has_config,
                declared_sha256=bundle.content_sha256,
                computed_sha256=canonical_sha256(canonical) if has_config else "",
            )
            deployment = await self._activation.deploy(agent, verified, canonical)
        return deployment_pb(deployment)
