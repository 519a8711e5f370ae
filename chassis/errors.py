"""Domain-facing exceptions and their one mapping to rich gRPC status.

Servicers raise these; ``ErrorMappingInterceptor`` turns them into a status with
``google.rpc`` details. Anything else becomes INTERNAL without internals, logged with its trace id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

log = logging.getLogger("speako.errors")

ERROR_DOMAIN = "speako.dev"


class ServiceError(Exception):
    """An expected failure with a gRPC status code and structured details."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = ""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason

    def details(self) -> list[object]:
        """Return the google.rpc detail messages of this error."""
        if not self.reason:
            return []
        return [error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN)]

    def to_status(self) -> grpc.Status:
        """Build the grpc.Status (with details in the trailers) for this error."""
        packed = []
        for detail in self.details():
            any_detail = any_pb2.Any()
            any_detail.Pack(detail)  # type: ignore[arg-type]
            packed.append(any_detail)
        proto = status_pb2.Status(code=self.code.value[0], message=self.message, details=packed)
        return rpc_status.to_status(proto)


# (field, description) or (field, description, reason): reason is a stable machine-readable code.
FieldViolations = Sequence[tuple[str, str] | tuple[str, str, str]]


def _bad_request(field_violations: FieldViolations) -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v[0], description=v[1], reason=v[2] if len(v) > 2 else "")
            for v in field_violations
        ]
    )


class InvalidArgument(ServiceError):
    """The request itself is wrong; field_violations name the fields."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str, field_violations: FieldViolations = (), *, reason: str | None = None):
        super().__init__(message, reason=reason)
        self.field_violations = list(field_violations)

    def details(self) -> list[object]:
        return [*super().details(), _bad_request(self.field_violations)] if self.field_violations else super().details()


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND

    def __init__(self, message: str, *, resource_name: str = "", resource_type: str = ""):
        super().__init__(message)
        self.resource_name = resource_name
        self.resource_type = resource_type

    def details(self) -> list[object]:
        info = error_details_pb2.ResourceInfo(
            resource_name=self.resource_name, resource_type=self.resource_type, description=self.message
        )
        return [info] if self.resource_name else []


class AlreadyExists(NotFound):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ServiceError):
    """The system is not in a state that allows the request."""

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(
        self,
        message: str,
        *,
        precondition_violations: Sequence[tuple[str, str, str]] = (),
        field_violations: FieldViolations = (),
        reason: str | None = None,
    ):
        super().__init__(message, reason=reason)
        self.precondition_violations = list(precondition_violations)
        self.field_violations = list(field_violations)

    def details(self) -> list[object]:
        out = super().details()
        if self.precondition_violations:
            out.append(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(type=t, subject=s, description=d)
                        for t, s, d in self.precondition_violations
                    ]
                )
            )
        if self.field_violations:
            out.append(_bad_request(self.field_violations))
        return out


class Aborted(ServiceError):
    """A concurrent writer won (stale etag); re-read and retry."""

    code = grpc.StatusCode.ABORTED


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class OutOfRange(ServiceError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


def internal_status(trace_id: str) -> grpc.Status:
    """The status of an unexpected failure: no internals, only a trace id to quote."""
    proto = status_pb2.Status(
        code=code_pb2.INTERNAL,
        message=f"internal error (trace id {trace_id or 'unknown'})",
    )
    return rpc_status.to_status(proto)
