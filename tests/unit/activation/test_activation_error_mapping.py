"""Domain refusals and infrastructure failures map to precise statuses (never INTERNAL)."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from chassis import errors
from chassis.interceptors import abort_for
from services.activation.calls import CallsNotRecorded
from services.activation.domain.errors import (
    InvalidBundle,
    InvalidPhoneNumber,
    NumberNotHeld,
    NumberTaken,
    PreconditionsUnmet,
    RequestIdReused,
    Superseded,
    UnknownNumber,
    Violation,
)
from services.activation.servicer import domain_errors, request_key
from speako.activation.v1 import activation_service_pb2 as act

AGENT = "tenants/acme/agents/a"


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (InvalidBundle("bad", [("bundle.config", "is required")]), errors.InvalidArgument),
        (Superseded(AGENT, 2, 3), errors.FailedPrecondition),
        (InvalidPhoneNumber("phone_number", "x", "must be E.164"), errors.InvalidArgument),
        (NumberTaken("+14155550100", None), errors.AlreadyExists),
        (NumberNotHeld(AGENT, "+14155550100"), errors.NotFound),
        (UnknownNumber("+14155550100"), errors.NotFound),
        (PreconditionsUnmet("no", [Violation("STATE", AGENT, "draft")]), errors.FailedPrecondition),
        (RequestIdReused("id", "ActivateAgent"), errors.InvalidArgument),
        (CallsNotRecorded("db down"), errors.Unavailable),
    ],
)
def test_each_refusal_has_its_status(raised, expected):
    with pytest.raises(expected), domain_errors():
        raise raised


@pytest.mark.parametrize("raised", [asyncpg.TooManyConnectionsError("too many"), ConnectionRefusedError("refused")])
async def test_database_outages_reach_callers_as_unavailable(raised):
    # Mapped once for every service by the chassis pipeline, not by activation's own mapper.
    class Context:
        status = None

        async def abort_with_status(self, status):
            self.status = status
            raise RuntimeError("aborted")

    context = Context()
    with pytest.raises(RuntimeError, match="aborted"):
        await abort_for(raised, context, "/speako.activation.v1.ActivationService/RouteCall")
    assert context.status.code == grpc.StatusCode.UNAVAILABLE


def test_superseded_names_the_live_version_in_the_precondition_failure():
    with pytest.raises(errors.FailedPrecondition) as err, domain_errors():
        raise Superseded(AGENT, 2, 3)
    assert err.value.precondition_violations[0][1] == f"{AGENT}/versions/3"
    assert f"{AGENT}/versions/3" in err.value.message


def test_request_key_ignores_the_request_id_itself_and_validates_it():
    one = request_key(
        "ActivateAgent", act.ActivateAgentRequest(name=AGENT, request_id="7b4c9b52-3a36-4d07-a2c8-000000000001")
    )
    two = request_key(
        "ActivateAgent", act.ActivateAgentRequest(name=AGENT, request_id="7b4c9b52-3a36-4d07-a2c8-000000000002")
    )
    other = request_key(
        "ActivateAgent",
        act.ActivateAgentRequest(name="tenants/acme/agents/b", request_id="7b4c9b52-3a36-4d07-a2c8-000000000001"),
    )
    assert one is not None and two is not None and other is not None
    assert one.fingerprint == two.fingerprint != other.fingerprint
    assert request_key("ActivateAgent", act.ActivateAgentRequest(name=AGENT)) is None
    with pytest.raises(errors.InvalidArgument):
        request_key("ActivateAgent", act.ActivateAgentRequest(name=AGENT, request_id="nope"))
