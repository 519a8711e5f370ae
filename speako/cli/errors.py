"""Server errors shown as one clear line (with the google.rpc details), never a traceback."""

from __future__ import annotations

from dataclasses import dataclass, field

import click
import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

# Exit codes scripts can rely on (documented in docs/CLI.md).
EXIT_SERVER_ERROR = 1
EXIT_USAGE = 2
EXIT_SUPERSEDED = 3
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class ErrorReport:
    """What the server said, decoded from the status and its details."""

    code: str
    message: str
    field_violations: list[tuple[str, str, str]] = field(default_factory=list)  # field, description, reason
    precondition_violations: list[tuple[str, str, str]] = field(default_factory=list)  # type, subject, description
    reason: str = ""
    resource: str = ""

    def line(self) -> str:
        """The one line printed for this error (details the message already quotes are not repeated)."""
        text = f"{self.code}: {self.message}" if self.message else self.code
        fields = [
            f"{f or '(request)'}: {d}" + (f" [{r}]" if r else "")
            for f, d, r in self.field_violations
            if not (d and d in self.message)
        ]
        if fields:
            text += " — " + "; ".join(fields)
        unmet = [
            " ".join(p for p in (t, s) if p) + (f": {d}" if d else "")
            for t, s, d in self.precondition_violations
            if not (d and d in self.message)
        ]
        if unmet:
            text += " — unmet: " + "; ".join(unmet)
        return text


def report_from_status(code: str, message: str, status: status_pb2.Status | None) -> ErrorReport:
    """Decode BadRequest, PreconditionFailure, ErrorInfo and ResourceInfo details."""
    report = ErrorReport(code=code, message=message)
    if status is None:
        return report
    reason = resource = ""
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            report.field_violations.extend((v.field, v.description, v.reason) for v in bad.field_violations)
        elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            report.precondition_violations.extend((v.type, v.subject, v.description) for v in failure.violations)
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            res = error_details_pb2.ResourceInfo()
            detail.Unpack(res)
            resource = res.resource_name
    return ErrorReport(
        code=report.code,
        message=report.message,
        field_violations=report.field_violations,
        precondition_violations=report.precondition_violations,
        reason=reason,
        resource=resource,
    )


def report_from_rpc_error(err: grpc.RpcError) -> ErrorReport:
    """Decode a failed call (sync or streaming) into an ErrorReport."""
    code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = (err.details() if isinstance(err, grpc.Call) else str(err)) or ""
    try:
        status = rpc_status.from_call(err) if isinstance(err, grpc.Call) else None
    except ValueError:
        # Details that do not match code/message are ignored rather than trusted.
        status = None
    return report_from_status(code.name, message, status)


def hint(report: ErrorReport, service: str, addr: str, timeout: float) -> str:
    """A short 'what to do' added to errors a newcomer meets first."""
    if report.code == "UNAVAILABLE":
        return (
            f"cannot reach the {service} service at {addr}: is it running (speako serve all)? "
            f"Check --{service}-addr or SPEAKO_{service.upper()}_ADDR."
        )
    if report.code == "DEADLINE_EXCEEDED":
        return f"No answer from the {service} service at {addr} within {timeout:g}s; raise it with --timeout."
    if report.code == "UNAUTHENTICATED":
        return (
            "Pass a token with --token or SPEAKO_TOKEN; in dev mode: "
            "export SPEAKO_TOKEN=$(SPEAKO_ENV=dev speako token --tenant acme)"
        )
    return ""


class ServerError(click.ClickException):
    """A failed RPC, shown as one line on stderr; exit code 1."""

    exit_code = EXIT_SERVER_ERROR

    def __init__(self, report: ErrorReport, extra: str = "") -> None:
        if report.code == "UNAVAILABLE" and extra:
            # The transport message is noise next to the explanation.
            text = f"UNAVAILABLE: {extra}"
        else:
            text = report.line() + (f". {extra}" if extra else "")
        super().__init__(text)
        self.report = report
        self.text = text

    def format_message(self) -> str:
        return self.text

    def show(self, file: object = None) -> None:
        click.secho(f"error: {self.format_message()}", err=True, fg="red")


class UsageProblem(click.ClickException):
    """A mistake in what was typed (bad reference, field path or value): one line, exit code 2."""

    exit_code = EXIT_USAGE

    def show(self, file: object = None) -> None:
        click.secho(f"error: {self.format_message()}", err=True, fg="red")
