"""chassis.auth and chassis.settings in isolation: tokens, tenants in requests, fail-closed policy,
secret checks and the default deadline of service-to-service calls."""

from __future__ import annotations

import time

import grpc
import grpc.aio
import jwt
import pytest

from chassis import auth, clients
from chassis.errors import PermissionDenied, Unauthenticated
from chassis.settings import DEV_AUTH_SECRET, Settings, SettingsError
from speako.activation.v1 import resources_pb2 as act_res
from speako.activation.v1 import runtime_service_pb2 as rt
from speako.config.v1 import config_service_pb2 as cfg
from speako.config.v1 import resources_pb2 as res
from speako.notifier.v1 import notifier_service_pb2 as ntf
from speako.notifier.v1 import resources_pb2 as ntf_res
from tests.security.security_support import WRONG_SECRET

# 64 bytes: long enough for the HS512 token below too (PyJWT warns about shorter HMAC keys).
SECRET = "a-test-secret-that-is-long-enough-for-hs256-and-for-hs512-tokens"
GET = "/speako.config.v1.ConfigService/GetAgent"
CREATE = "/speako.config.v1.ConfigService/CreateAgent"
POLICY = {GET: auth.Rule(auth.Access.READ), CREATE: auth.Rule(auth.Access.EDIT)}


def _claims(**overrides):
    claims = {"sub": "alice", "tenant": "acme", "roles": ["viewer"], "exp": int(time.time()) + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    "token,reason",
    [
        (jwt.encode(_claims(), WRONG_SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(), SECRET, algorithm="HS512"), "TOKEN_INVALID"),
        (jwt.encode(_claims(), "", algorithm="none"), "TOKEN_INVALID"),
        (jwt.encode(_claims(exp=int(time.time()) - 60), SECRET, algorithm="HS256"), "TOKEN_EXPIRED"),
        (jwt.encode(_claims(exp=None), SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(sub=None), SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(sub=""), SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(tenant=None), SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(tenant=""), SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(tenant=["acme"]), SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(tenant="ACME"), SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(tenant="acme\n"), SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(tenant="acme/agents/x"), SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(sub="a\x00b"), SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(sub="x" * 257), SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(roles="admin"), SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(roles=[1]), SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(nbf=int(time.time()) + 600), SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        ("not-a-jwt", "TOKEN_INVALID"),
    ],
    ids=[
        "wrong-secret",
        "hs512",
        "alg-none",
        "expired",
        "no-exp",
        "no-sub",
        "empty-sub",
        "no-tenant",
        "empty-tenant",
        "tenant-list",
        "tenant-uppercase",
        "tenant-newline",
        "tenant-path",
        "sub-nul",
        "sub-too-long",
        "roles-string",
        "roles-ints",
        "not-yet-valid",
        "garbage",
    ],
)
def test_bad_tokens_are_unauthenticated_with_a_reason(token: str, reason: str):
    with pytest.raises(Unauthenticated) as caught:
        auth.verify_token(SECRET, token)
    assert caught.value.reason == reason


def test_a_good_token_gives_its_principal():
    token = auth.mint_token(SECRET, subject="alice", tenant="acme", roles=["editor"], ttl_s=600)
    principal = auth.verify_token(SECRET, token)
    assert (principal.subject, principal.tenant, principal.roles) == ("alice", "acme", frozenset({"editor"}))
    assert abs(principal.expires_at - (time.time() + 600)) < 5


@pytest.mark.parametrize(
    "metadata,reason",
    [
        ({}, "TOKEN_MISSING"),
        ({"authorization": "Basic abc"}, "TOKEN_MALFORMED"),
        ({"authorization": "Bearer "}, "TOKEN_MALFORMED"),
        ({"authorization": "token"}, "TOKEN_MALFORMED"),
    ],
)
def test_authorization_header_must_be_a_bearer_token(metadata, reason):
    with pytest.raises(Unauthenticated) as caught:
        auth.bearer_token(metadata)
    assert caught.value.reason == reason


def test_the_scheme_is_case_insensitive():
    assert auth.bearer_token({"authorization": b"bearer abc.def.ghi"}) == "abc.def.ghi"


@pytest.mark.parametrize(
    "request_message,tenants",
    [
        (cfg.GetAgentRequest(name="tenants/acme/agents/a"), {"acme"}),
        (
            cfg.DiffVersionsRequest(
                base="tenants/acme/agents/a/versions/1", target="tenants/globex/agents/a/versions/2"
            ),
            {"acme", "globex"},
        ),
        (cfg.UpdateDraftRequest(draft=res.Draft(name="tenants/globex/agents/a/draft")), {"globex"}),
        (
            rt.DeployBundleRequest(
                bundle=act_res.Bundle(agent="tenants/acme/agents/a", version="tenants/globex/agents/a/versions/1")
            ),
            {"acme", "globex"},
        ),
        (ntf.ListPublishJobsRequest(parent="tenants/globex/agents/a"), {"globex"}),
        (ntf.GetPublishJobRequest(name="tenants/globex\n"), {"globex"}),
        # Free text and the config payload never name resources.
        (cfg.CreateAgentRequest(parent="tenants/acme", agent=res.Agent(display_name="tenants/globex")), {"acme"}),
        (
            ntf.CreateMaintenanceNoticeRequest(
                notice=ntf_res.MaintenanceNotice(title="tenants/globex", message="tenants/initech")
            ),
            set(),
        ),
        (
            cfg.UpdateDraftRequest(
                draft=res.Draft(
                    name="tenants/acme/agents/a/draft", config=res.AgentConfig(fallback_message="tenants/globex")
                )
            ),
            {"acme"},
        ),
        (cfg.GetAgentRequest(name="calls/x"), set()),
    ],
)
def test_resource_tenants_finds_every_named_tenant(request_message, tenants):
    assert auth.resource_tenants(request_message) == tenants


def test_resource_tenants_reads_repeated_nested_messages():
    # No request has such a field today; a future one must not slip past the tenant check.
    request = res.ValidationReport(
        name="tenants/acme/agents/a/draft", violations=[res.Violation(field="tenants/globex/agents/b")]
    )
    assert auth.resource_tenants(request) == {"acme", "globex"}


def test_policy_fails_closed_for_unclassified_rpcs():
    authorizer = auth.Authorizer(SECRET, POLICY)
    admin = auth.Principal("root", "*", frozenset(auth.ROLE_GRANTS))
    with pytest.raises(PermissionDenied):
        authorizer.authorize("/speako.config.v1.ConfigService/Unlisted", admin, cfg.GetAgentRequest())


def test_cross_tenant_readers_read_but_never_write():
    sre = auth.Principal("sre", "ops", frozenset({"sre"}))
    assert sre.may_access_tenant("acme", auth.Access.READ)
    assert not sre.may_access_tenant("acme", auth.Access.MEMBER)
    assert not sre.may_access_tenant("acme", auth.Access.SRE)
    authorizer = auth.Authorizer(SECRET, {**POLICY, "/x/Mark": auth.Rule(auth.Access.MEMBER)})
    with pytest.raises(PermissionDenied):
        authorizer.authorize("/x/Mark", sre, ntf.MarkNotificationReadRequest(name="tenants/acme/notifications/n"))
    viewer = auth.Principal("v", "acme", frozenset({"viewer"}))
    authorizer.authorize("/x/Mark", viewer, ntf.MarkNotificationReadRequest(name="tenants/acme/notifications/n"))
    with pytest.raises(PermissionDenied):
        authorizer.authorize("/x/Mark", viewer, ntf.MarkNotificationReadRequest(name="tenants/globex/notifications/n"))


# ---- settings ------------------------------------------------------------------------------------


def test_settings_require_a_secret_outside_dev_mode():
    with pytest.raises(SettingsError, match="SPEAKO_AUTH_SECRET is not set"):
        Settings.from_env({})
    with pytest.raises(SettingsError, match="at least 32"):
        Settings.from_env({"SPEAKO_AUTH_SECRET": "short"})
    assert Settings.from_env({"SPEAKO_AUTH_SECRET": SECRET}).auth_secret == SECRET


def test_dev_mode_uses_the_built_in_secret():
    settings = Settings.from_env({"SPEAKO_ENV": "dev"})
    assert settings.dev_mode and settings.auth_secret == DEV_AUTH_SECRET


def test_message_limit_defaults_to_16_mib_and_is_configurable():
    assert Settings.from_env({"SPEAKO_ENV": "dev"}).max_message_bytes == 16 * 1024 * 1024
    settings = Settings.from_env({"SPEAKO_ENV": "dev", "SPEAKO_MAX_MESSAGE_BYTES": "1048576"})
    assert settings.max_message_bytes == 1024 * 1024
    assert ("grpc.max_receive_message_length", 1024 * 1024) in clients.channel_options(settings)
    with pytest.raises(SettingsError):
        Settings.from_env({"SPEAKO_ENV": "dev", "SPEAKO_MAX_MESSAGE_BYTES": "-1"})


async def test_service_calls_get_a_service_token_a_default_deadline_and_the_trace_context():
    seen: list[tuple[dict[str, str], float | None]] = []

    async def get_version(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen.append((dict(context.invocation_metadata() or ()), context.time_remaining()))
        return res.Version(name=cfg.GetVersionRequest.FromString(request).name).SerializeToString()

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "speako.config.v1.ConfigService", {"GetVersion": grpc.unary_unary_rpc_method_handler(get_version)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    settings = Settings.from_env({"SPEAKO_AUTH_SECRET": SECRET, "SPEAKO_RPC_TIMEOUT_S": "7.5"})
    client = clients.ServiceClient(f"127.0.0.1:{port}", settings, caller="speako-publisher")
    try:
        get = client.unary("/speako.config.v1.ConfigService/GetVersion", res.Version)
        version = await get(cfg.GetVersionRequest(name="tenants/a/agents/b/versions/1"), None)
        await get(cfg.GetVersionRequest(name="tenants/a/agents/b/versions/1"), 2.0)
    finally:
        await client.close()
        await server.stop(0)
    assert version.name == "tenants/a/agents/b/versions/1"
    (metadata, default_left), (_, explicit_left) = seen
    # (gRPC rounds a deadline up a little on the wire.)
    assert default_left is not None and 6.0 < default_left <= 7.6
    assert explicit_left is not None and 1.0 < explicit_left <= 2.1
    # The caller's trace continues in the callee (W3C traceparent).
    assert metadata["traceparent"].startswith("00-")
    token = metadata["authorization"].removeprefix("Bearer ")
    principal = auth.verify_token(SECRET, token)
    assert principal.roles == {"service"} and principal.tenant == "*" and principal.subject == "speako-publisher"


def test_services_only_call_out_through_the_chassis_channel():
    """Every outgoing RPC carries a service token and a deadline because no service builds its own
    gRPC channel: they all use chassis.clients.ServiceClient."""
    from tests.harness import ROOT

    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "services").rglob("*.py")
        if "insecure_channel(" in path.read_text() or "secure_channel(" in path.read_text()
    ]
    assert not offenders, f"call other services through chassis.clients.ServiceClient: {offenders}"
