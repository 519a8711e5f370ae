"""Limits and server-owned fields: no mass assignment, page_size clamped, message size bounded,
streams capped per tenant, and the secret required outside dev mode."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from speako.activation.v1 import activation_service_pb2 as act
from speako.config.v1 import config_service_pb2 as cfg
from speako.config.v1 import resources_pb2 as res
from speako.notifier.v1 import notifier_service_pb2 as ntf
from speako.notifier.v1 import resources_pb2 as ntf_res
from tests.factories import valid_config
from tests.harness import ROOT, free_port
from tests.security.conftest import STREAM_CAP
from tests.security.security_support import (
    SecurityPlatform,
    bearer,
    bounded_gather,
    call_stream,
    call_unary,
    mint,
)

TERMINAL = {res.PublishJob.STATE_PUBLISHED, res.PublishJob.STATE_FAILED, res.PublishJob.STATE_SUPERSEDED}
MIB = 1024 * 1024
LONG_AGO = timestamp_pb2.Timestamp(seconds=978307200)  # 2001-01-01


def _recent(ts: timestamp_pb2.Timestamp, within_s: float = 300) -> bool:
    return abs((datetime.now(UTC) - ts.ToDatetime(tzinfo=UTC)).total_seconds()) < within_s


@pytest.fixture(scope="module")
def plat(secure_platform: SecurityPlatform) -> SecurityPlatform:
    return secure_platform


# ---- no mass assignment ------------------------------------------------------------------------


def test_server_sets_names_creator_requester_state_and_version_numbers(plat: SecurityPlatform):
    """Client-supplied output fields (name, times, counters, creator) are ignored."""
    stubs = plat.stubs
    editor = bearer(mint(["editor"], "massa", subject="alice@massa"))
    publisher = bearer(mint(["publisher"], "massa", subject="bob@massa"))

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["agent"] = await stubs.config.CreateAgent(
            cfg.CreateAgentRequest(
                parent="tenants/massa",
                agent_id="real",
                agent=res.Agent(
                    name="tenants/massa/agents/chosen",
                    display_name="Real",
                    create_time=LONG_AGO,
                    update_time=LONG_AGO,
                    latest_version_number=42,
                ),
            ),
            metadata=editor,
            timeout=10,
        )
        out["chosen"] = await call_unary(
            stubs.config, "GetAgent", cfg.GetAgentRequest(name="tenants/massa/agents/chosen"), editor
        )
        out["draft"] = await stubs.config.UpdateDraft(
            cfg.UpdateDraftRequest(
                draft=res.Draft(
                    name="tenants/massa/agents/real/draft",
                    config=valid_config(),
                    update_time=LONG_AGO,
                    has_unpublished_changes=False,
                )
            ),
            metadata=editor,
            timeout=10,
        )
        job = await stubs.config.PublishDraft(
            cfg.PublishDraftRequest(name="tenants/massa/agents/real/draft"), metadata=publisher, timeout=10
        )
        out["job"] = job
        out["version"] = await stubs.config.GetVersion(
            cfg.GetVersionRequest(name=job.version), metadata=editor, timeout=10
        )
        async for update in stubs.notifier.WatchPublishJob(
            ntf.WatchPublishJobRequest(name=job.name), metadata=editor, timeout=60
        ):
            if update.job.state in TERMINAL:
                out["final"] = update.job
                break
        await stubs.config.UpdateDraft(
            cfg.UpdateDraftRequest(
                draft=res.Draft(name="tenants/massa/agents/real/draft", config=valid_config("Hi from {business_name}."))
            ),
            metadata=editor,
            timeout=10,
        )
        out["job2"] = await stubs.config.PublishDraft(
            cfg.PublishDraftRequest(name="tenants/massa/agents/real/draft"),
            metadata=bearer(mint(["admin"], "massa", subject="dan@massa")),
            timeout=10,
        )
        now = int(time.time())
        out["notice"] = await stubs.notifier.CreateMaintenanceNotice(
            ntf.CreateMaintenanceNoticeRequest(
                notice=ntf_res.MaintenanceNotice(
                    name="notices/chosen-by-client",
                    title="Upgrade",
                    message="m",
                    creator="mallory",
                    create_time=LONG_AGO,
                    start_time=timestamp_pb2.Timestamp(seconds=now + 3600),
                    end_time=timestamp_pb2.Timestamp(seconds=now + 7200),
                )
            ),
            metadata=bearer(mint(["sre"], "*", subject="carol@ops")),
            timeout=10,
        )
        return out

    out = plat.run(run())
    agent = out["agent"]
    assert agent.name == "tenants/massa/agents/real"
    assert agent.latest_version_number == 0 and _recent(agent.create_time) and _recent(agent.update_time)
    assert out["chosen"].code == grpc.StatusCode.NOT_FOUND
    draft = out["draft"]
    assert _recent(draft.update_time) and draft.has_unpublished_changes
    job = out["job"]
    assert job.state == res.PublishJob.STATE_SUBMITTED
    assert job.requester == "bob@massa"
    assert job.version == "tenants/massa/agents/real/versions/1"
    assert out["version"].creator == "bob@massa" and out["version"].number == 1
    assert out["final"].requester == "bob@massa" and out["final"].state == res.PublishJob.STATE_PUBLISHED
    assert out["job2"].version == "tenants/massa/agents/real/versions/2" and out["job2"].requester == "dan@massa"
    notice = out["notice"]
    assert notice.name != "notices/chosen-by-client" and notice.name.startswith("notices/")
    assert notice.creator == "carol@ops" and _recent(notice.create_time)


# ---- page_size ----------------------------------------------------------------------------------


def test_page_size_is_clamped_to_1000_and_defaults_to_50(plat: SecurityPlatform):
    """A huge page_size returns at most 1000 items; 0 means 50; a negative one is INVALID_ARGUMENT."""
    stubs = plat.stubs
    md = bearer(mint(["editor"], "bulk"))

    async def run() -> dict[str, Any]:
        await bounded_gather(
            [
                stubs.config.CreateAgent(
                    cfg.CreateAgentRequest(parent="tenants/bulk", agent_id=f"a{i:04d}"), metadata=md, timeout=30
                )
                for i in range(1001)
            ],
            limit=2,
        )
        out: dict[str, Any] = {}
        out["huge"] = await stubs.config.ListAgents(
            cfg.ListAgentsRequest(parent="tenants/bulk", page_size=2**31 - 1), metadata=md, timeout=30
        )
        out["rest"] = await stubs.config.ListAgents(
            cfg.ListAgentsRequest(parent="tenants/bulk", page_size=2**31 - 1, page_token=out["huge"].next_page_token),
            metadata=md,
            timeout=30,
        )
        out["default"] = await stubs.config.ListAgents(
            cfg.ListAgentsRequest(parent="tenants/bulk"), metadata=md, timeout=30
        )
        out["negative"] = await call_unary(
            stubs.config, "ListAgents", cfg.ListAgentsRequest(parent="tenants/bulk", page_size=-1), md
        )
        for name, service, method, request in [
            ("versions", stubs.config, "ListVersions", cfg.ListVersionsRequest(parent="tenants/bulk/agents/a0001")),
            ("jobs", stubs.notifier, "ListPublishJobs", ntf.ListPublishJobsRequest(parent="tenants/bulk")),
            ("notifications", stubs.notifier, "ListNotifications", ntf.ListNotificationsRequest(parent="tenants/bulk")),
        ]:
            for label, size in (("huge", 2**31 - 1), ("negative", -5)):
                sized = type(request)()
                sized.CopyFrom(request)
                sized.page_size = size
                out[f"{name}-{label}"] = await call_unary(service, method, sized, md)
        return out

    out = plat.run(run(), timeout=150)
    assert len(out["huge"].agents) == 1000 and out["huge"].next_page_token
    assert [a.name for a in out["rest"].agents] == ["tenants/bulk/agents/a1000"] and not out["rest"].next_page_token
    assert len(out["default"].agents) == 50
    assert out["negative"].code == grpc.StatusCode.INVALID_ARGUMENT and "page_size" in out["negative"].fields
    for name in ("versions", "jobs", "notifications"):
        assert out[f"{name}-huge"].code == grpc.StatusCode.OK, (name, out[f"{name}-huge"])
        neg = out[f"{name}-negative"]
        assert neg.code == grpc.StatusCode.INVALID_ARGUMENT and "page_size" in neg.fields, (name, neg)


# ---- message size -------------------------------------------------------------------------------


def test_requests_over_the_message_limit_are_resource_exhausted(plat: SecurityPlatform):
    """Default limit 16 MiB on every service: over it RESOURCE_EXHAUSTED naming the limit, nothing
    changed, service still SERVING; just under it the request reaches the handler's own checks."""
    stubs = plat.stubs
    md = bearer(mint(["admin"], "sizes"))
    over = "x" * (16 * MIB + 1024)
    under = "x" * (15 * MIB)

    async def run() -> dict[str, Any]:
        await stubs.config.CreateAgent(
            cfg.CreateAgentRequest(parent="tenants/sizes", agent_id="big"), metadata=md, timeout=10
        )
        before = await stubs.config.GetDraft(
            cfg.GetDraftRequest(name="tenants/sizes/agents/big/draft"), metadata=md, timeout=10
        )
        out: dict[str, Any] = {"before": before}
        draft = res.Draft(name="tenants/sizes/agents/big/draft", config=res.AgentConfig(fallback_message=over))
        out["config"] = await call_unary(stubs.config, "UpdateDraft", cfg.UpdateDraftRequest(draft=draft), md, 30)
        out["notifier"] = await call_unary(
            stubs.notifier,
            "ListNotifications",
            ntf.ListNotificationsRequest(parent="tenants/sizes", page_token=over),
            md,
            30,
        )
        out["activation"] = await call_unary(
            stubs.activation,
            "AssignPhoneNumber",
            act.AssignPhoneNumberRequest(name="tenants/sizes/agents/big", phone_number=over),
            md,
            30,
        )
        under_draft = res.Draft(name="tenants/sizes/agents/big/draft", config=res.AgentConfig(fallback_message=under))
        out["under"] = await call_unary(stubs.config, "UpdateDraft", cfg.UpdateDraftRequest(draft=under_draft), md, 30)
        out["after"] = await stubs.config.GetDraft(
            cfg.GetDraftRequest(name="tenants/sizes/agents/big/draft"), metadata=md, timeout=10
        )
        return out

    out = plat.run(run(), timeout=120)
    for service in ("config", "notifier", "activation"):
        outcome = out[service]
        assert outcome.code == grpc.StatusCode.RESOURCE_EXHAUSTED, (service, outcome)
        assert "larger than max" in outcome.message.lower() and str(16 * MIB) in outcome.message, outcome.message
    # Under the transport limit the config service's own size rules answer, precisely.
    assert out["under"].code == grpc.StatusCode.INVALID_ARGUMENT, out["under"]
    assert any(f.startswith("draft.config") for f in out["under"].fields), out["under"]
    assert out["after"] == out["before"]
    assert plat.health() == dict.fromkeys(plat.channels, "SERVING")


# ---- streams ------------------------------------------------------------------------------------


def test_concurrent_streams_are_capped_per_tenant(plat: SecurityPlatform):
    """A tenant gets at most SPEAKO_NOTIFIER_MAX_STREAMS_PER_TENANT open streams on a notifier;
    the next is RESOURCE_EXHAUSTED, other tenants are unaffected, and a closed stream frees a slot."""
    stubs = plat.stubs
    md = bearer(mint(["viewer"], "streamy"))
    other = bearer(mint(["viewer"], "calm"))

    async def run() -> dict[str, Any]:
        calls = []
        for i in range(STREAM_CAP):
            if i % 2:
                calls.append(
                    stubs.notifier.WatchPublishJobs(
                        ntf.WatchPublishJobsRequest(parent="tenants/streamy"), metadata=md, timeout=60
                    )
                )
            else:
                # Idle notification streams send nothing; the call starts as soon as it is made.
                calls.append(
                    stubs.notifier.WatchNotifications(
                        ntf.WatchNotificationsRequest(parent="tenants/streamy"), metadata=md, timeout=60
                    )
                )
        # A first heartbeat on every job stream: the server holds their slots.
        await asyncio.gather(*(call.read() for call in calls[1::2]))
        # Give the server a moment to register the silent notification streams too.
        await asyncio.sleep(0.5)
        out: dict[str, Any] = {}
        out["over"] = await call_stream(
            stubs.notifier, "WatchPublishJobs", ntf.WatchPublishJobsRequest(parent="tenants/streamy"), md, timeout=5
        )
        out["over-notifications"] = await call_stream(
            stubs.notifier, "WatchNotifications", ntf.WatchNotificationsRequest(parent="tenants/streamy"), md, timeout=1
        )
        out["other-tenant"] = await call_stream(
            stubs.notifier, "WatchPublishJobs", ntf.WatchPublishJobsRequest(parent="tenants/calm"), other, timeout=5
        )
        calls.pop().cancel()
        calls.pop().cancel()
        for _ in range(50):
            out["after-close"] = await call_stream(
                stubs.notifier, "WatchPublishJobs", ntf.WatchPublishJobsRequest(parent="tenants/streamy"), md, timeout=5
            )
            if out["after-close"].code == grpc.StatusCode.OK:
                break
            await asyncio.sleep(0.1)
        for call in calls:
            call.cancel()
        return out

    out = plat.run(run(), timeout=90)
    assert out["over"].code == grpc.StatusCode.RESOURCE_EXHAUSTED and out["over"].reason == "TOO_MANY_STREAMS"
    assert "streams" in out["over"].message
    assert out["over-notifications"].code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert out["other-tenant"].code == grpc.StatusCode.OK
    assert out["after-close"].code == grpc.StatusCode.OK


# ---- start-up: the secret and dev mode ----------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPEAKO_", "OTEL_"))}
    env.update(SPEAKO_METRICS_PORT_BASE="0", PYTHONUNBUFFERED="1", **extra)
    return env


@pytest.mark.parametrize(
    "extra,expected",
    [
        ({}, "SPEAKO_AUTH_SECRET is not set"),
        ({"SPEAKO_ENV": "production"}, "SPEAKO_AUTH_SECRET is not set"),
        ({"SPEAKO_AUTH_SECRET": "too-short"}, "at least 32"),
    ],
    ids=["unset", "production", "short"],
)
def test_serve_refuses_to_start_without_a_usable_secret(extra: dict[str, str], expected: str):
    """Outside dev mode `speako serve` stops at start with a clear message and a non-zero exit."""
    proc = subprocess.run(
        [sys.executable, "-m", "speako.cli", "serve", "config", "--no-create-database"],
        env=_env(SPEAKO_DATABASE_URL="postgresql://postgres@127.0.0.1:1/none", **extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_token_command_only_works_in_dev_mode():
    """`speako token` refuses to mint outside dev mode."""
    proc = subprocess.run(
        [sys.executable, "-m", "speako.cli", "token"],
        env=_env(SPEAKO_AUTH_SECRET="s" * 40),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "SPEAKO_ENV=dev" in proc.stderr


@pytest.fixture
def dev_server(plat: SecurityPlatform, tmp_path) -> Iterator[tuple[subprocess.Popen[bytes], str, Any]]:
    """A config service in dev mode (no secret set) on the platform's database and vhost."""
    addr = f"127.0.0.1:{free_port()}"
    env = _env(
        SPEAKO_ENV="dev",
        SPEAKO_DATABASE_URL=plat.platform.database_url,
        SPEAKO_AMQP_URL=plat.platform.amqp_url,
        SPEAKO_CONFIG_ADDR=addr,
    )
    log = tmp_path / "dev-config.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "speako.cli", "serve", "config", "--no-create-database"],
            env=env,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    yield proc, addr, log
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_dev_mode_warns_and_accepts_dev_tokens(plat: SecurityPlatform, dev_server):
    """SPEAKO_ENV=dev starts without a secret, prints a warning, and `speako token` works against it."""
    proc, addr, log = dev_server
    deadline = time.monotonic() + 60
    warning = ""
    while not warning and time.monotonic() < deadline and proc.poll() is None:
        warning = next((line for line in log.read_text(errors="replace").splitlines() if "SPEAKO_ENV=dev" in line), "")
        time.sleep(0.1)
    assert "WARNING" in warning and "never expose" in warning, log.read_text(errors="replace")[-2000:]
    minted = subprocess.run(
        [sys.executable, "-m", "speako.cli", "token", "--tenant", "devco", "--role", "viewer"],
        env=_env(SPEAKO_ENV="dev"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert minted.returncode == 0, minted.stderr
    dev_token = minted.stdout.strip()

    async def call() -> Any:
        async with grpc.aio.insecure_channel(addr) as channel:
            from speako.config.v1 import config_service_pb2_grpc

            stub = config_service_pb2_grpc.ConfigServiceStub(channel)
            await channel.channel_ready()
            ok = await call_unary(stub, "ListAgents", cfg.ListAgentsRequest(parent="tenants/devco"), bearer(dev_token))
            other = await call_unary(
                stub, "ListAgents", cfg.ListAgentsRequest(parent="tenants/acme"), bearer(dev_token)
            )
            return ok, other

    ok, other = plat.run(asyncio.wait_for(call(), 60), timeout=90)
    assert ok.code == grpc.StatusCode.OK
    # Dev mode relaxes the secret, never the rules.
    assert other.code == grpc.StatusCode.PERMISSION_DENIED


def test_long_lists_in_requests_are_refused_or_bounded(plat: SecurityPlatform):
    """Long repeated fields get a precise answer quickly, never INTERNAL; a config with too many
    items is refused naming the list."""
    stubs = plat.stubs
    md = bearer(mint(["admin"], "lists"))
    faqs = [res.Faq(question=f"q{i}?", answer="a") for i in range(20_000)]

    async def run() -> dict[str, Any]:
        await stubs.config.CreateAgent(
            cfg.CreateAgentRequest(parent="tenants/lists", agent_id="long"), metadata=md, timeout=10
        )
        draft = "tenants/lists/agents/long/draft"
        out: dict[str, Any] = {}
        out["faqs"] = await call_unary(
            stubs.config,
            "UpdateDraft",
            cfg.UpdateDraftRequest(
                draft=res.Draft(name=draft, config=res.AgentConfig(knowledge=res.Knowledge(faqs=faqs)))
            ),
            md,
            30,
        )
        out["paths"] = await call_unary(
            stubs.config,
            "UpdateDraft",
            cfg.UpdateDraftRequest(
                draft=res.Draft(name=draft, config=valid_config()),
                update_mask=field_mask_pb2.FieldMask(paths=["greetings"] * 100_000),
            ),
            md,
            30,
        )
        out["states"] = await call_unary(
            stubs.notifier,
            "ListPublishJobs",
            ntf.ListPublishJobsRequest(parent="tenants/lists", states=[res.PublishJob.STATE_FAILED] * 200_000),
            md,
            30,
        )
        return out

    out = plat.run(run(), timeout=120)
    assert out["faqs"].code == grpc.StatusCode.INVALID_ARGUMENT, out["faqs"]
    assert any("knowledge.faqs" in f for f in out["faqs"].fields), out["faqs"]
    for label in ("paths", "states"):
        assert out[label].code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (label, out[label])
