"""The role/tenant matrix of every RPC, proven against the four services running as processes.

The expected table below is written out by hand from DESIGN.md section 7; it deliberately does not
import the services' POLICY tables or chassis.auth's grants, so a wrong policy entry fails here.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.activation.policy import POLICY as ACTIVATION_POLICY
from services.config.policy import POLICY as CONFIG_POLICY
from services.notifier.policy import POLICY as NOTIFIER_POLICY
from services.publisher.policy import POLICY as PUBLISHER_POLICY
from speako.activation.v1 import activation_service_pb2 as act
from speako.activation.v1 import resources_pb2 as act_res
from speako.activation.v1 import runtime_service_pb2 as rt
from speako.config.v1 import config_service_pb2 as cfg
from speako.config.v1 import resources_pb2 as res
from speako.notifier.v1 import notifier_service_pb2 as ntf
from speako.notifier.v1 import resources_pb2 as ntf_res
from tests.factories import valid_config
from tests.security.security_support import (
    OTHER,
    OWN,
    WRONG_SECRET,
    Outcome,
    SecurityPlatform,
    bearer,
    bounded_gather,
    call_stream,
    call_unary,
    mint,
    raw_token,
)

# ---- the expected table (DESIGN.md section 7, by hand) ------------------------------------------

# Levels: what an RPC does. Roles holding each level:
#   read     viewer (read own tenant) and every role above it; sre reads every tenant; service reads
#            too (the publisher reads versions with its service token: GetVersion)
#   member   a tenant member's own bookkeeping (mark a notification read): viewer and above, own
#            tenant only (sre "reads" every tenant: it must not change another tenant's state)
#   edit     editor (+ agents, drafts, restore) and above
#   publish  publisher (+ publish) and admin
#   admin    admin (+ activation, phone numbers)
#   sre      sre (maintenance notices)
#   service  service (internal RPCs: DeployBundle, RouteCall, GetCall, EndCall)
LEVEL_ROLES = {
    "read": {"viewer", "editor", "publisher", "admin", "sre", "service"},
    "member": {"viewer", "editor", "publisher", "admin"},
    "edit": {"editor", "publisher", "admin"},
    "publish": {"publisher", "admin"},
    "admin": {"admin"},
    "sre": {"sre"},
    "service": {"service"},
}
CROSS_TENANT_READERS = {"sre", "service"}

CONFIG = "speako.config.v1.ConfigService"
NOTIFIER = "speako.notifier.v1.NotifierService"
ACTIVATION = "speako.activation.v1.ActivationService"
RUNTIME = "speako.activation.v1.RuntimeService"

REQUIRED: dict[str, str] = {
    f"/{CONFIG}/CreateAgent": "edit",
    f"/{CONFIG}/GetAgent": "read",
    f"/{CONFIG}/ListAgents": "read",
    f"/{CONFIG}/GetDraft": "read",
    f"/{CONFIG}/UpdateDraft": "edit",
    f"/{CONFIG}/ValidateDraft": "read",
    f"/{CONFIG}/PublishDraft": "publish",
    f"/{CONFIG}/GetVersion": "read",
    f"/{CONFIG}/ListVersions": "read",
    f"/{CONFIG}/DiffVersions": "read",
    f"/{CONFIG}/RestoreVersion": "edit",
    f"/{NOTIFIER}/GetPublishJob": "read",
    f"/{NOTIFIER}/ListPublishJobs": "read",
    f"/{NOTIFIER}/WatchPublishJob": "read",
    f"/{NOTIFIER}/WatchPublishJobs": "read",
    f"/{NOTIFIER}/ListNotifications": "read",
    f"/{NOTIFIER}/MarkNotificationRead": "member",
    f"/{NOTIFIER}/WatchNotifications": "read",
    f"/{NOTIFIER}/CreateMaintenanceNotice": "sre",
    f"/{ACTIVATION}/GetAgentStatus": "read",
    f"/{ACTIVATION}/AssignPhoneNumber": "admin",
    f"/{ACTIVATION}/ReleasePhoneNumber": "admin",
    f"/{ACTIVATION}/ActivateAgent": "admin",
    f"/{ACTIVATION}/DeactivateAgent": "admin",
    f"/{ACTIVATION}/RouteCall": "service",
    f"/{ACTIVATION}/GetCall": "service",
    f"/{ACTIVATION}/EndCall": "service",
    f"/{RUNTIME}/DeployBundle": "service",
}

SERVICE_DESCRIPTORS = {
    CONFIG: cfg.DESCRIPTOR.services_by_name["ConfigService"],
    NOTIFIER: ntf.DESCRIPTOR.services_by_name["NotifierService"],
    ACTIVATION: act.DESCRIPTOR.services_by_name["ActivationService"],
    RUNTIME: rt.DESCRIPTOR.services_by_name["RuntimeService"],
}
# Which process serves which gRPC service, and so whose POLICY must classify its RPCs.
POLICIES = {CONFIG: CONFIG_POLICY, NOTIFIER: NOTIFIER_POLICY, ACTIVATION: ACTIVATION_POLICY, RUNTIME: ACTIVATION_POLICY}


def proto_methods() -> list[tuple[str, str, bool]]:
    """(service, full method, server-streaming) for every RPC in the proto descriptors."""
    return [
        (service, f"/{service}/{m.name}", m.server_streaming)
        for service, descriptor in SERVICE_DESCRIPTORS.items()
        for m in descriptor.methods
    ]


# ---- callers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who calls: a label, its metadata, and (for valid tokens) its roles and tenant claim."""

    label: str
    metadata: tuple[tuple[str, str], ...]
    roles: frozenset[str] = frozenset()
    tenant: str = ""
    # For callers that fail authentication: the ErrorInfo reason expected.
    unauthenticated: str = ""


def callers() -> list[Caller]:
    now = int(time.time())
    out = [
        Caller(f"{role}@{OWN}", bearer(mint([role], OWN)), frozenset({role}), OWN)
        for role in sorted(LEVEL_ROLES["read"])
    ]
    out += [
        Caller("sre@*", bearer(mint(["sre"], "*")), frozenset({"sre"}), "*"),
        Caller("service@*", bearer(mint(["service"], "*")), frozenset({"service"}), "*"),
        Caller("no-roles", bearer(mint([], OWN)), frozenset(), OWN),
        Caller("unknown-role", bearer(mint(["superuser", "root"], OWN)), frozenset({"superuser", "root"}), OWN),
        Caller("no-token", (), unauthenticated="TOKEN_MISSING"),
        Caller("basic-scheme", (("authorization", "Basic YWRtaW46YWRtaW4="),), unauthenticated="TOKEN_MALFORMED"),
        Caller("garbage-token", bearer("not.a.jwt"), unauthenticated="TOKEN_INVALID"),
        Caller(
            "wrong-signature",
            bearer(raw_token({"sub": "x", "tenant": OWN, "roles": ["admin"], "exp": now + 600}, WRONG_SECRET)),
            unauthenticated="TOKEN_INVALID",
        ),
        Caller("expired", bearer(mint(["admin"], OWN, ttl_s=-60)), unauthenticated="TOKEN_EXPIRED"),
        Caller(
            "alg-none",
            bearer(raw_token({"sub": "x", "tenant": "*", "roles": ["admin"], "exp": now + 600}, "", "none")),
            unauthenticated="TOKEN_INVALID",
        ),
        Caller(
            "no-exp",
            bearer(raw_token({"sub": "x", "tenant": OWN, "roles": ["admin"]})),
            unauthenticated="TOKEN_INVALID",
        ),
        Caller(
            "no-tenant",
            bearer(raw_token({"sub": "x", "roles": ["admin"], "exp": now + 600})),
            unauthenticated="TOKEN_INVALID",
        ),
        Caller(
            "roles-not-a-list",
            bearer(raw_token({"sub": "x", "tenant": OWN, "roles": "admin", "exp": now + 600})),
            unauthenticated="TOKEN_INVALID",
        ),
    ]
    return out


def expected(method: str, caller: Caller, target: str | None) -> tuple[str, str]:
    """('allowed', '') or (status name, ErrorInfo reason) for a caller on a target tenant."""
    if caller.unauthenticated:
        return "UNAUTHENTICATED", caller.unauthenticated
    level = REQUIRED[method]
    if not caller.roles & LEVEL_ROLES[level]:
        return "PERMISSION_DENIED", "MISSING_ROLE"
    if target is None or caller.tenant in ("*", target):
        return "allowed", ""
    if level == "read" and caller.roles & CROSS_TENANT_READERS:
        return "allowed", ""
    return "PERMISSION_DENIED", "OTHER_TENANT"


# ---- one request per RPC, naming resources of a target tenant -----------------------------------


def _ts(seconds_from_now: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromSeconds(int(time.time() + seconds_from_now))
    return ts


def _number() -> str:
    return "+1415" + str(uuid.uuid4().int)[:7]


Builder = Callable[[str], Any]
# Requests carry resource names of tenant t (None: the RPC names no tenant). Mutating requests aim
# at an agent that does not exist or carry an invalid detail, so an allowed call is refused by the
# handler (NOT_FOUND, INVALID_ARGUMENT...) and the matrix leaves little behind.
REQUESTS: dict[str, tuple[bool, Builder]] = {
    f"/{CONFIG}/CreateAgent": (
        True,
        lambda t: cfg.CreateAgentRequest(
            parent=f"tenants/{t}", agent_id=f"m-{uuid.uuid4().hex[:10]}", agent=res.Agent(display_name="Matrix")
        ),
    ),
    f"/{CONFIG}/GetAgent": (True, lambda t: cfg.GetAgentRequest(name=f"tenants/{t}/agents/front-desk")),
    f"/{CONFIG}/ListAgents": (True, lambda t: cfg.ListAgentsRequest(parent=f"tenants/{t}")),
    f"/{CONFIG}/GetDraft": (True, lambda t: cfg.GetDraftRequest(name=f"tenants/{t}/agents/front-desk/draft")),
    f"/{CONFIG}/UpdateDraft": (
        True,
        lambda t: cfg.UpdateDraftRequest(
            draft=res.Draft(name=f"tenants/{t}/agents/ghost/draft", config=valid_config())
        ),
    ),
    f"/{CONFIG}/ValidateDraft": (True, lambda t: cfg.ValidateDraftRequest(name=f"tenants/{t}/agents/ghost/draft")),
    f"/{CONFIG}/PublishDraft": (True, lambda t: cfg.PublishDraftRequest(name=f"tenants/{t}/agents/ghost/draft")),
    f"/{CONFIG}/GetVersion": (True, lambda t: cfg.GetVersionRequest(name=f"tenants/{t}/agents/ghost/versions/1")),
    f"/{CONFIG}/ListVersions": (True, lambda t: cfg.ListVersionsRequest(parent=f"tenants/{t}/agents/ghost")),
    f"/{CONFIG}/DiffVersions": (
        True,
        lambda t: cfg.DiffVersionsRequest(
            base=f"tenants/{t}/agents/ghost/versions/1", target=f"tenants/{t}/agents/ghost/versions/2"
        ),
    ),
    f"/{CONFIG}/RestoreVersion": (
        True,
        lambda t: cfg.RestoreVersionRequest(name=f"tenants/{t}/agents/ghost/versions/1"),
    ),
    f"/{NOTIFIER}/GetPublishJob": (
        True,
        lambda t: ntf.GetPublishJobRequest(name=f"tenants/{t}/agents/ghost/publishJobs/{uuid.uuid4()}"),
    ),
    f"/{NOTIFIER}/ListPublishJobs": (True, lambda t: ntf.ListPublishJobsRequest(parent=f"tenants/{t}")),
    f"/{NOTIFIER}/WatchPublishJob": (
        True,
        lambda t: ntf.WatchPublishJobRequest(name=f"tenants/{t}/agents/ghost/publishJobs/{uuid.uuid4()}"),
    ),
    f"/{NOTIFIER}/WatchPublishJobs": (True, lambda t: ntf.WatchPublishJobsRequest(parent=f"tenants/{t}/agents/ghost")),
    f"/{NOTIFIER}/ListNotifications": (True, lambda t: ntf.ListNotificationsRequest(parent=f"tenants/{t}")),
    f"/{NOTIFIER}/MarkNotificationRead": (
        True,
        lambda t: ntf.MarkNotificationReadRequest(name=f"tenants/{t}/notifications/{uuid.uuid4()}"),
    ),
    f"/{NOTIFIER}/WatchNotifications": (True, lambda t: ntf.WatchNotificationsRequest(parent=f"tenants/{t}")),
    # Ends before it starts: refused by the handler, nothing announced.
    f"/{NOTIFIER}/CreateMaintenanceNotice": (
        False,
        lambda t: ntf.CreateMaintenanceNoticeRequest(
            notice=ntf_res.MaintenanceNotice(title="Matrix", message="m", start_time=_ts(7200), end_time=_ts(3600))
        ),
    ),
    f"/{ACTIVATION}/GetAgentStatus": (True, lambda t: act.GetAgentStatusRequest(name=f"tenants/{t}/agents/ghost")),
    f"/{ACTIVATION}/AssignPhoneNumber": (
        True,
        lambda t: act.AssignPhoneNumberRequest(name=f"tenants/{t}/agents/ghost", phone_number="not-a-number"),
    ),
    f"/{ACTIVATION}/ReleasePhoneNumber": (
        True,
        lambda t: act.ReleasePhoneNumberRequest(name=f"tenants/{t}/agents/ghost", phone_number=_number()),
    ),
    f"/{ACTIVATION}/ActivateAgent": (True, lambda t: act.ActivateAgentRequest(name=f"tenants/{t}/agents/ghost")),
    f"/{ACTIVATION}/DeactivateAgent": (True, lambda t: act.DeactivateAgentRequest(name=f"tenants/{t}/agents/ghost")),
    f"/{ACTIVATION}/RouteCall": (False, lambda t: act.RouteCallRequest(called_number=_number())),
    f"/{ACTIVATION}/GetCall": (False, lambda t: act.GetCallRequest(name=f"calls/{uuid.uuid4()}")),
    f"/{ACTIVATION}/EndCall": (False, lambda t: act.EndCallRequest(name=f"calls/{uuid.uuid4()}")),
    # A bundle whose digest does not match its config: rejected by the handler, never deployed.
    f"/{RUNTIME}/DeployBundle": (
        True,
        lambda t: rt.DeployBundleRequest(
            bundle=act_res.Bundle(
                agent=f"tenants/{t}/agents/ghost",
                version=f"tenants/{t}/agents/ghost/versions/1",
                content_sha256="0" * 64,
                config=valid_config(),
            )
        ),
    ),
}


@pytest.fixture(scope="module")
def matrix_platform(secure_platform: SecurityPlatform) -> SecurityPlatform:
    return secure_platform


# ---- tests --------------------------------------------------------------------------------------


def test_every_rpc_of_the_protos_is_classified_by_its_service_policy():
    """Fail-closed coverage: every RPC has a POLICY entry in the process serving it, none stale."""
    methods = {m for _, m, _ in proto_methods()}
    for service, method, _ in proto_methods():
        assert method in POLICIES[service], f"{method} has no entry in its service's POLICY"
    stale = (set(CONFIG_POLICY) | set(NOTIFIER_POLICY) | set(ACTIVATION_POLICY)) - methods
    assert not stale, f"POLICY entries for RPCs that do not exist: {sorted(stale)}"
    assert dict(PUBLISHER_POLICY) == {}, "the publisher serves only health and reflection"
    # The hand-written table covers the contract exactly, so a new RPC cannot slip past the matrix.
    assert set(REQUIRED) == methods == set(REQUESTS)


@pytest.mark.parametrize("service,method,streaming", proto_methods(), ids=lambda v: str(v).rsplit("/", 1)[-1])
def test_role_and_tenant_matrix(matrix_platform: SecurityPlatform, service: str, method: str, streaming: bool):
    """Each caller, on its own tenant and on another, is let through or refused precisely."""
    names_tenant, build = REQUESTS[method]
    targets: list[str | None] = [OWN, OTHER] if names_tenant else [None]
    stub = matrix_platform.stubs.for_service(service)
    rpc = method.rsplit("/", 1)[-1]
    cases = [(c, t) for c in callers() for t in targets]

    async def run_case(caller: Caller, target: str | None) -> Outcome:
        request = build(target or OWN)
        if streaming:
            return await call_stream(stub, rpc, request, caller.metadata)
        return await call_unary(stub, rpc, request, caller.metadata)

    async def run_all() -> list[Outcome]:
        return await bounded_gather([run_case(c, t) for c, t in cases], limit=24 if streaming else 2)

    outcomes = matrix_platform.run(run_all())
    wrong = []
    for (caller, target), outcome in zip(cases, outcomes, strict=True):
        want_code, want_reason = expected(method, caller, target)
        if want_code == "allowed":
            ok = outcome.past_auth and outcome.code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
        else:
            ok = outcome.code.name == want_code and outcome.reason == want_reason
        if not ok:
            wrong.append(f"{caller.label} -> {target}: expected {want_code} {want_reason}, got {outcome}")
    assert not wrong, f"{method}:\n" + "\n".join(wrong)


def test_health_and_reflection_stay_open_without_a_token(matrix_platform: SecurityPlatform):
    """grpc.health.v1 and server reflection answer callers without credentials."""
    assert matrix_platform.health() == dict.fromkeys(matrix_platform.channels, "SERVING")

    async def list_services() -> dict[str, set[str]]:
        out = {}
        for name, channel in matrix_platform.channels.items():
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            responses = stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            async for reply in responses:
                out[name] = {s.name for s in reply.list_services_response.service}
                break
        return out

    listed = matrix_platform.run(list_services())
    assert CONFIG in listed["config"]
    assert {ACTIVATION, RUNTIME} <= listed["activation"]
    assert NOTIFIER in listed["notifier"]
    assert "grpc.health.v1.Health" in listed["publisher"]


def test_denials_explain_themselves(matrix_platform: SecurityPlatform):
    """A refusal names what is missing (the role, the tenant, the token problem) without internals."""
    stubs = matrix_platform.stubs

    async def run() -> list[Outcome]:
        return list(
            await asyncio.gather(
                call_unary(
                    stubs.config,
                    "PublishDraft",
                    cfg.PublishDraftRequest(name=f"tenants/{OWN}/agents/a/draft"),
                    bearer(mint(["editor"], OWN)),
                ),
                call_unary(
                    stubs.config,
                    "GetAgent",
                    cfg.GetAgentRequest(name=f"tenants/{OTHER}/agents/a"),
                    bearer(mint(["admin"], OWN)),
                ),
                call_unary(
                    stubs.config,
                    "GetAgent",
                    cfg.GetAgentRequest(name=f"tenants/{OWN}/agents/a"),
                    bearer(mint(["admin"], OWN, ttl_s=-60)),
                ),
                call_unary(stubs.config, "GetAgent", cfg.GetAgentRequest(name=f"tenants/{OWN}/agents/a"), ()),
            )
        )

    role, tenant, expired, missing = matrix_platform.run(run())
    assert role.code == grpc.StatusCode.PERMISSION_DENIED and "publish" in role.message and "editor" in role.message
    assert tenant.code == grpc.StatusCode.PERMISSION_DENIED and OTHER in tenant.message
    assert expired.code == grpc.StatusCode.UNAUTHENTICATED and "expired" in expired.message
    assert missing.code == grpc.StatusCode.UNAUTHENTICATED and "Bearer" in missing.message
