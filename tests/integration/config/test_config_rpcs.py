"""ConfigService RPCs over real gRPC, PostgreSQL and RabbitMQ: behaviour and precise errors."""

from __future__ import annotations

import asyncio
import re
import uuid

import grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.config.domain import checklist, paging
from services.config.domain.canonical import content_sha256
from speako.config.v1 import config_service_pb2 as svc
from speako.config.v1 import resources_pb2 as r
from tests.integration.config.config_support import TENANT, client_for, rpc_error, valid_config

AGENT = f"tenants/{TENANT}/agents/front-desk"


def bad_request(err: grpc.aio.AioRpcError) -> error_details_pb2.BadRequest:
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        found = error_details_pb2.BadRequest()
        if detail.Unpack(found):
            return found
    raise AssertionError(f"no BadRequest in {status}")


async def test_create_get_and_list_agents(client, token, channel):
    created = await client.create_agent("front-desk")
    assert created.name == AGENT and created.display_name == "front-desk"
    assert created.latest_version_number == 0 and created.create_time.seconds > 0
    assert await client.GetAgent(svc.GetAgentRequest(name=AGENT)) == created

    err = await rpc_error(client.create_agent("front-desk"))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS

    err = await rpc_error(client.create_agent("Front_Desk"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request(err).field_violations[0].field == "agent_id"

    err = await rpc_error(client.GetAgent(svc.GetAgentRequest(name=f"tenants/{TENANT}/agents/nobody")))
    assert err.code() == grpc.StatusCode.NOT_FOUND

    for i in range(4):
        await client.create_agent(f"agent-{i}")
    # Another tenant's agents never show up.
    other = client_for(channel, token(["editor"], "globex", "bob@globex"))
    await other.create_agent("agent-x", tenant="globex")

    seen, page_token = [], ""
    while True:
        page = await client.ListAgents(
            svc.ListAgentsRequest(parent=f"tenants/{TENANT}", page_size=2, page_token=page_token)
        )
        seen += [a.name.rsplit("/", 1)[1] for a in page.agents]
        page_token = page.next_page_token
        if not page_token:
            break
    assert seen == ["agent-0", "agent-1", "agent-2", "agent-3", "front-desk"]

    err = await rpc_error(client.ListAgents(svc.ListAgentsRequest(parent=f"tenants/{TENANT}", page_token="junk")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request(err).field_violations[0].field == "page_token"
    err = await rpc_error(client.ListAgents(svc.ListAgentsRequest(parent=f"tenants/{TENANT}", page_size=-1)))
    assert bad_request(err).field_violations[0].field == "page_size"


async def test_create_agent_request_id_replays_and_refuses_reuse(client):
    rid = str(uuid.uuid4())
    request = svc.CreateAgentRequest(parent=f"tenants/{TENANT}", agent_id="front-desk", request_id=rid)
    first = await client.CreateAgent(request)
    again = await client.CreateAgent(request)
    assert again == first
    reused = svc.CreateAgentRequest(parent=f"tenants/{TENANT}", agent_id="other", request_id=rid)
    err = await rpc_error(client.CreateAgent(reused))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request(err).field_violations[0].field == "request_id"
    err = await rpc_error(client.GetAgent(svc.GetAgentRequest(name=f"tenants/{TENANT}/agents/other")))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    bad = svc.CreateAgentRequest(parent=f"tenants/{TENANT}", agent_id="x", request_id="not-a-uuid")
    assert bad_request(await rpc_error(client.CreateAgent(bad))).field_violations[0].field == "request_id"


async def test_draft_update_mask_etag_and_unpublished_changes(client):
    await client.create_agent("front-desk")
    draft = await client.GetDraft(svc.GetDraftRequest(name=f"{AGENT}/draft"))
    assert draft.config == r.AgentConfig() and draft.etag and not draft.has_unpublished_changes

    full = await client.set_config(AGENT, valid_config(), etag=draft.etag)
    assert full.config == valid_config() and full.has_unpublished_changes and full.etag != draft.etag

    masked = await client.UpdateDraft(
        svc.UpdateDraftRequest(
            draft=r.Draft(
                name=f"{AGENT}/draft",
                config=r.AgentConfig(greetings=r.Greetings(opening_greeting="Hi!"), fallback_message="ignored"),
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["greetings.opening_greeting"]),
        )
    )
    expected = valid_config()
    expected.greetings.opening_greeting = "Hi!"
    assert masked.config == expected
    assert masked.update_time.ToDatetime() >= full.update_time.ToDatetime()

    # A stale etag is ABORTED and changes nothing.
    err = await rpc_error(client.set_config(AGENT, r.AgentConfig(), etag=full.etag))
    assert err.code() == grpc.StatusCode.ABORTED
    err = await rpc_error(client.set_config(AGENT, r.AgentConfig(), etag="garbage"))
    assert err.code() == grpc.StatusCode.ABORTED
    assert (await client.GetDraft(svc.GetDraftRequest(name=f"{AGENT}/draft"))).config == expected

    # Writing identical content keeps the etag (no spurious conflicts for other writers).
    same = await client.set_config(AGENT, expected, etag=masked.etag)
    assert same.etag == masked.etag


async def test_update_draft_rejects_unknown_paths_bad_names_and_oversize_content(client):
    await client.create_agent("front-desk")
    before = await client.set_config(AGENT, valid_config())

    err = await rpc_error(
        client.UpdateDraft(
            svc.UpdateDraftRequest(
                draft=r.Draft(name=f"{AGENT}/draft"),
                update_mask=field_mask_pb2.FieldMask(paths=["greetings", "greetings.opening"]),
            )
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "greetings.opening" in err.details()
    assert bad_request(err).field_violations[0].field == "update_mask.paths[1]"

    err = await rpc_error(client.UpdateDraft(svc.UpdateDraftRequest()))
    assert bad_request(err).field_violations[0].field == "draft"
    err = await rpc_error(client.set_config(f"tenants/{TENANT}/agents/front-desk/versions/1", r.AgentConfig()))
    assert bad_request(err).field_violations[0].field == "draft.name"
    err = await rpc_error(client.set_config(f"tenants/{TENANT}/agents/nobody", r.AgentConfig()))
    assert err.code() == grpc.StatusCode.NOT_FOUND

    huge = valid_config()
    huge.knowledge.articles.add(title="Manual", body="x" * (checklist.MAX_ARTICLE_BYTES + 1))
    err = await rpc_error(client.set_config(AGENT, huge))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    violation = bad_request(err).field_violations[0]
    assert violation.field == "draft.config.knowledge.articles[0].body"
    assert "512 KiB" in violation.description

    after = await client.GetDraft(svc.GetDraftRequest(name=f"{AGENT}/draft"))
    assert after.etag == before.etag and after.config == valid_config()


async def test_two_writers_with_the_same_etag_exactly_one_wins(client):
    await client.create_agent("front-desk")
    base = await client.set_config(AGENT, valid_config())
    for round_ in range(5):
        configs = [valid_config(f"Writer {w} round {round_}") for w in range(2)]
        results = await asyncio.gather(
            *(client.set_config(AGENT, c, etag=base.etag) for c in configs), return_exceptions=True
        )
        winners = [x for x in results if isinstance(x, r.Draft)]
        losers = [x for x in results if isinstance(x, grpc.aio.AioRpcError)]
        assert len(winners) == 1 and len(losers) == 1, results
        assert losers[0].code() == grpc.StatusCode.ABORTED
        current = await client.GetDraft(svc.GetDraftRequest(name=f"{AGENT}/draft"))
        assert current.config == winners[0].config and current.etag == winners[0].etag
        base = current


async def test_validate_draft_reports_errors_and_warnings(client):
    await client.create_agent("front-desk")
    config = valid_config("Hello {customer")
    config.tools[0].transfer_number = "555-0100"
    config.fallback_message = ""
    await client.set_config(AGENT, config)
    report = await client.ValidateDraft(svc.ValidateDraftRequest(name=f"{AGENT}/draft"))
    assert report.name == f"{AGENT}/draft"
    got = {(v.field, v.code, v.severity) for v in report.violations}
    error, warning = r.Violation.Severity.SEVERITY_ERROR, r.Violation.Severity.SEVERITY_WARNING
    assert got == {
        ("greetings.opening_greeting", "GREETING_UNBALANCED_BRACE", error),
        ("tools[0].transfer_number", "TOOL_TRANSFER_NUMBER_INVALID", error),
        ("tools", "NO_TRANSFER_TOOL", warning),
        ("fallback_message", "FALLBACK_MESSAGE_EMPTY", warning),
    }
    assert all(v.message for v in report.violations)


async def test_publish_with_checklist_errors_is_refused_and_creates_nothing(client, db):
    await client.create_agent("front-desk")
    config = valid_config("")
    config.personality.prompt = ""
    config.fallback_message = ""  # a warning: not part of the refusal
    await client.set_config(AGENT, config)
    err = await rpc_error(client.publish(AGENT, request_id=str(uuid.uuid4())))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    violations = {(v.field, v.reason) for v in bad_request(err).field_violations}
    assert violations == {
        ("greetings.opening_greeting", "GREETING_OPENING_EMPTY"),
        ("personality.prompt", "PERSONALITY_PROMPT_EMPTY"),
    }
    assert "opening greeting is empty" in err.details()
    for table in ("versions", "publish_requests", "outbox", "idempotency"):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    agent = await client.GetAgent(svc.GetAgentRequest(name=AGENT))
    assert agent.latest_version_number == 0


async def test_publish_versions_history_diff_and_restore(client, db):
    await client.create_agent("front-desk")
    v1_config = valid_config()
    await client.set_config(AGENT, v1_config)

    job = await client.publish(AGENT)
    assert re.fullmatch(rf"{AGENT}/publishJobs/[0-9a-f-]{{36}}", job.name)
    assert job.version == f"{AGENT}/versions/1"
    assert job.state == r.PublishJob.State.STATE_SUBMITTED
    assert job.requester == "alice@acme"
    assert re.fullmatch(r"[0-9a-f]{32}", job.trace_id) and job.trace_id != "0" * 32
    assert job.deadline.ToSeconds() - job.create_time.ToSeconds() == 300
    assert list(job.changed_sections) == ["greetings", "voice", "personality", "tools", "knowledge", "fallback_message"]

    v1 = await client.GetVersion(svc.GetVersionRequest(name=job.version))
    assert v1.number == 1 and v1.config == v1_config and v1.creator == "alice@acme"
    assert v1.content_sha256 == content_sha256(v1_config)
    assert not (await client.GetDraft(svc.GetDraftRequest(name=f"{AGENT}/draft"))).has_unpublished_changes

    # Identical content reuses the version: a new job, no new number.
    again = await client.publish(AGENT)
    assert again.version == job.version and again.name != job.name

    v2_config = valid_config("Welcome to {business_name}!")
    v2_config.pronunciations["Nguyen"] = "win"
    await client.set_config(AGENT, v2_config)
    job2 = await client.publish(AGENT)
    assert job2.version == f"{AGENT}/versions/2"
    assert list(job2.changed_sections) == ["greetings", "pronunciations"]

    diff = await client.DiffVersions(svc.DiffVersionsRequest(base=job.version, target=job2.version))
    assert [(c.field, c.base_value, c.target_value) for c in diff.changes] == [
        ("greetings.opening_greeting", '"Thanks for calling {business_name}."', '"Welcome to {business_name}!"'),
        ('pronunciations["Nguyen"]', "", '"win"'),
    ]

    restored = await client.RestoreVersion(svc.RestoreVersionRequest(name=job.version))
    assert restored.config == v1_config and restored.has_unpublished_changes
    job3 = await client.publish(AGENT)
    assert job3.version == f"{AGENT}/versions/3"  # rollback = restore + publish, numbers only grow
    v3 = await client.GetVersion(svc.GetVersionRequest(name=job3.version))
    assert v3.content_sha256 == v1.content_sha256 and list(v3.changed_sections) == ["greetings", "pronunciations"]
    assert (await client.GetAgent(svc.GetAgentRequest(name=AGENT))).latest_version_number == 3

    listed, page_token = [], ""
    while True:
        page = await client.ListVersions(svc.ListVersionsRequest(parent=AGENT, page_size=2, page_token=page_token))
        listed += [v.number for v in page.versions]
        page_token = page.next_page_token
        if not page_token:
            break
    assert listed == [3, 2, 1]
    assert (await client.ListVersions(svc.ListVersionsRequest(parent=AGENT))).versions[0] == v3

    # Every publish request is recorded and announced twice (publish.requested + job.submitted).
    assert await db.fetchval("SELECT count(*) FROM publish_requests") == 4
    assert await db.fetchval("SELECT count(*) FROM versions") == 3


async def test_version_errors(client, token, channel):
    await client.create_agent("front-desk")
    await client.create_agent("back-office")
    await client.set_config(AGENT, valid_config())
    job = await client.publish(AGENT)
    missing = f"{AGENT}/versions/9"
    assert (await rpc_error(client.GetVersion(svc.GetVersionRequest(name=missing)))).code() == grpc.StatusCode.NOT_FOUND
    err = await rpc_error(client.GetVersion(svc.GetVersionRequest(name=f"{AGENT}/versions/0")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = await rpc_error(client.DiffVersions(svc.DiffVersionsRequest(base=job.version, target=missing)))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    other = f"tenants/{TENANT}/agents/back-office/versions/1"
    err = await rpc_error(client.DiffVersions(svc.DiffVersionsRequest(base=job.version, target=other)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request(err).field_violations[0].field == "target"
    err = await rpc_error(client.RestoreVersion(svc.RestoreVersionRequest(name=missing)))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = await rpc_error(client.ListVersions(svc.ListVersionsRequest(parent=f"tenants/{TENANT}/agents/nobody")))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    # A page token of one agent's list is refused by another's.
    await client.set_config(AGENT, valid_config("Other"))
    await client.publish(AGENT)
    page = await client.ListVersions(svc.ListVersionsRequest(parent=AGENT, page_size=1))
    err = await rpc_error(
        client.ListVersions(
            svc.ListVersionsRequest(parent=f"tenants/{TENANT}/agents/back-office", page_token=page.next_page_token)
        )
    )
    assert bad_request(err).field_violations[0].field == "page_token"
    # The publisher's service token reads versions of any tenant.
    service = client_for(channel, token(["service"], "*", "publisher"))
    assert (await service.GetVersion(svc.GetVersionRequest(name=job.version))).number == 1


async def test_publish_and_restore_honour_the_etag(client):
    await client.create_agent("front-desk")
    old = await client.set_config(AGENT, valid_config())
    await client.set_config(AGENT, valid_config("Changed after review"))
    err = await rpc_error(client.publish(AGENT, etag=old.etag))
    assert err.code() == grpc.StatusCode.ABORTED
    current = await client.GetDraft(svc.GetDraftRequest(name=f"{AGENT}/draft"))
    job = await client.publish(AGENT, etag=current.etag)
    err = await rpc_error(client.RestoreVersion(svc.RestoreVersionRequest(name=job.version, etag=old.etag)))
    assert err.code() == grpc.StatusCode.ABORTED


async def test_roles_and_tenants_are_enforced(client, token, channel):
    await client.create_agent("front-desk")
    await client.set_config(AGENT, valid_config())
    viewer = client_for(channel, token(["viewer"], TENANT, "val"))
    editor = client_for(channel, token(["editor"], TENANT, "ed"))
    stranger = client_for(channel, token(["admin"], "globex", "eve"))
    assert (await viewer.GetDraft(svc.GetDraftRequest(name=f"{AGENT}/draft"))).config == valid_config()
    denied = [
        viewer.set_config(AGENT, r.AgentConfig()),
        editor.publish(AGENT),
        stranger.GetDraft(svc.GetDraftRequest(name=f"{AGENT}/draft")),
        stranger.set_config(AGENT, r.AgentConfig()),
    ]
    for call in denied:
        assert (await rpc_error(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    no_token = client_for(channel, "")
    no_token.metadata = []
    err = await rpc_error(no_token.GetAgent(svc.GetAgentRequest(name=AGENT)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    # The editor's draft write is recorded; the requester of a publish is the token's subject.
    await editor.set_config(AGENT, valid_config("By the editor"))
    job = await client.publish(AGENT)
    assert job.requester == "alice@acme"
    assert (await client.GetVersion(svc.GetVersionRequest(name=job.version))).creator == "alice@acme"


async def test_list_versions_pages_stop_at_a_byte_budget(client):
    """Versions carry whole configs: a page ends early rather than exceed a few MiB."""
    await client.create_agent("front-desk")
    body = "k" * (400 * 1024)
    for i in range(3):
        config = valid_config(f"Big {i}")
        for j in range(5):  # ~2 MiB of knowledge per version
            config.knowledge.articles.add(title=f"a{j}", body=body)
        await client.set_config(AGENT, config)
        await client.publish(AGENT)
    numbers, page_token, pages = [], "", 0
    while True:
        page = await client.ListVersions(svc.ListVersionsRequest(parent=AGENT, page_size=10, page_token=page_token))
        pages += 1
        numbers += [v.number for v in page.versions]
        assert page.ByteSize() < 5 * 1024 * 1024
        page_token = page.next_page_token
        if not page_token:
            break
    assert numbers == [3, 2, 1] and pages >= 2


async def test_hostile_inputs_get_precise_errors_and_change_nothing(client, db):
    await client.create_agent("front-desk")
    await client.set_config(AGENT, valid_config())
    await client.publish(AGENT)
    nul_name = svc.CreateAgentRequest(parent=f"tenants/{TENANT}", agent_id="nul", agent=r.Agent(display_name="a\x00b"))
    err = await rpc_error(client.CreateAgent(nul_name))
    assert bad_request(err).field_violations[0].field == "agent.display_name"
    # Well-formed tokens carrying positions this service never issues.
    for parent, method, request_type, position in [
        (f"tenants/{TENANT}", client.ListAgents, svc.ListAgentsRequest, "\x00"),
        (f"tenants/{TENANT}", client.ListAgents, svc.ListAgentsRequest, 10**30),
        (AGENT, client.ListVersions, svc.ListVersionsRequest, 10**30),
        (AGENT, client.ListVersions, svc.ListVersionsRequest, True),
        (AGENT, client.ListVersions, svc.ListVersionsRequest, 0),
    ]:
        kind = "agents" if request_type is svc.ListAgentsRequest else "versions"
        forged = paging.encode_token(f"{kind}:{parent}", position)
        err = await rpc_error(method(request_type(parent=parent, page_token=forged)))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (position, err)
        assert bad_request(err).field_violations[0].field == "page_token"
    # An etag in other digits than ASCII never matches.
    draft = await client.GetDraft(svc.GetDraftRequest(name=f"{AGENT}/draft"))
    lookalike = draft.etag.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    err = await rpc_error(client.set_config(AGENT, r.AgentConfig(), etag=lookalike))
    assert err.code() == grpc.StatusCode.ABORTED
    err = await rpc_error(client.set_config(AGENT, r.AgentConfig(), etag=draft.etag + "\n"))
    assert err.code() == grpc.StatusCode.ABORTED
    assert await db.fetchval("SELECT count(*) FROM agents") == 1
    assert (await client.GetDraft(svc.GetDraftRequest(name=f"{AGENT}/draft"))).etag == draft.etag
