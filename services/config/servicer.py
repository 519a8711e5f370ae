"""gRPC handlers of speako.config.v1.ConfigService: protobuf <-> domain, store calls, errors."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import grpc.aio
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from chassis import auth, errors, telemetry
from chassis.names import ID_RE, AgentName, DraftName, TenantName, VersionName, check_id
from services.config.domain import paging
from services.config.domain.canonical import content_sha256
from services.config.domain.checklist import SIZE_LIMIT_CODES, Finding, Severity, check_config, has_errors
from services.config.domain.diff import changed_sections, diff_configs, normalize
from services.config.domain.fieldmask import UnknownFieldPath, apply_update_mask, validate_paths
from services.config.messaging import PublishEvents
from services.config.store import (
    AgentRecord,
    ConfigQueries,
    ConfigStore,
    DraftRecord,
    VersionRecord,
    revision_of,
)
from speako.config.v1 import config_service_pb2, config_service_pb2_grpc, resources_pb2

R = TypeVar("R", bound=Message)

MAX_DISPLAY_NAME_CHARS = 200
# A page of ListVersions stops growing at this many config bytes (the gRPC limit is far above).
LIST_VERSIONS_BYTE_BUDGET = 4 * 1024 * 1024
EMPTY_CONFIG_SHA256 = content_sha256(resources_pb2.AgentConfig())

_SEVERITY = {
    Severity.ERROR: resources_pb2.Violation.Severity.SEVERITY_ERROR,
    Severity.WARNING: resources_pb2.Violation.Severity.SEVERITY_WARNING,
}
_METHOD = "/speako.config.v1.ConfigService/"
_MAX_VERSION = 2**63 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _ts(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def _request_id(value: str, field: str = "request_id") -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise errors.InvalidArgument(
            f"{field} {value[:80]!r} is not a UUID",
            [(field, "must be a UUID, e.g. 123e4567-e89b-12d3-a456-426614174000")],
        ) from None


def _fingerprint(request: Message) -> str:
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


def _violation(finding: Finding) -> resources_pb2.Violation:
    return resources_pb2.Violation(
        field=finding.field, code=finding.code, message=finding.message, severity=_SEVERITY[finding.severity]
    )


def _config_path(prefix: str, field: str) -> str:
    return f"{prefix}.{field}" if field else prefix


class ChecklistFailed(errors.FailedPrecondition):
    """PublishDraft refused: BadRequest field violations carry each finding's code as reason."""

    def __init__(self, message: str, findings: Sequence[Finding]) -> None:
        super().__init__(message, reason="CHECKLIST_FAILED")
        self.findings = list(findings)

    def details(self) -> list[object]:
        return [
            *super().details(),
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f.field, description=f.message, reason=f.code)
                    for f in self.findings
                ]
            ),
        ]


def _corrupt_token() -> errors.InvalidArgument:
    return errors.InvalidArgument(
        "the page token is corrupt", [("page_token", "pass back next_page_token exactly as received")]
    )


def _requester() -> str:
    subject = auth.current_principal().subject
    # PostgreSQL text cannot hold NUL; such a subject cannot be recorded as creator or requester.
    if "\x00" in subject:
        raise errors.Unauthenticated("the token's sub claim contains a NUL character", reason="TOKEN_INVALID")
    return subject


def _stale_etag(name: str) -> errors.Aborted:
    return errors.Aborted(
        f"{name} has changed since the etag you sent was issued; read it again and retry",
        reason="ETAG_MISMATCH",
    )


def _summary(findings: Sequence[Finding], limit: int = 3) -> str:
    shown = "; ".join(f"{f.field or 'config'}: {f.message}" for f in findings[:limit])
    more = f" (and {len(findings) - limit} more)" if len(findings) > limit else ""
    return shown + more


class ConfigServicer(config_service_pb2_grpc.ConfigServiceServicer):
    """Agents, drafts, the checklist, versions and publish submission."""

    def __init__(
        self,
        store: ConfigStore,
        events: PublishEvents,
        *,
        publish_deadline_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._events = events
        self._deadline = timedelta(seconds=publish_deadline_s)
        self._clock = clock

    # --- shared helpers -------------------------------------------------------------------------

    async def _idempotent(
        self,
        tenant: str,
        request_id: uuid.UUID | None,
        method: str,
        request: Message,
        response_type: type[R],
        work: Callable[[ConfigQueries], Awaitable[R]],
    ) -> R:
        """Run ``work`` in one transaction; a repeated request_id replays the first response."""
        async with self._store.transaction() as q:
            if request_id is not None:
                fingerprint = _fingerprint(request)
                earlier = await q.claim_request(tenant, request_id, method, fingerprint)
                if earlier is not None:
                    if earlier.method != method or earlier.request_sha256 != fingerprint:
                        raise errors.InvalidArgument(
                            f"request_id {request_id} was already used for a different request",
                            [("request_id", "reuse a request_id only to retry the identical request")],
                            reason="REQUEST_ID_REUSED",
                        )
                    return response_type.FromString(earlier.response)
                q.unsaved_request = (tenant, request_id)
            response = await work(q)
            if q.unsaved_request is not None:  # the work did not store the response itself
                await q.save_response(*q.unsaved_request, response.SerializeToString())
            return response

    @staticmethod
    def _agent_proto(agent: AgentRecord) -> resources_pb2.Agent:
        return resources_pb2.Agent(
            name=str(AgentName(agent.tenant, agent.agent_id)),
            display_name=agent.display_name,
            create_time=_ts(agent.create_time),
            update_time=_ts(agent.update_time),
            latest_version_number=agent.latest_version_number,
        )

    @staticmethod
    def _draft_proto(agent: AgentRecord, draft: DraftRecord) -> resources_pb2.Draft:
        published = agent.latest_content_sha256 or EMPTY_CONFIG_SHA256
        out = resources_pb2.Draft(
            name=str(DraftName(draft.tenant, draft.agent_id)),
            etag=draft.etag,
            update_time=_ts(draft.update_time),
            has_unpublished_changes=draft.content_sha256 != published,
        )
        # Parsed in place: config=draft.config() would hold a parsed copy and the field's copy of
        # it at once (two copies of a config that can be megabytes).
        out.config.MergeFromString(draft.config_bytes)
        return out

    @staticmethod
    def _version_proto(version: VersionRecord) -> resources_pb2.Version:
        out = resources_pb2.Version(
            name=str(VersionName(version.tenant, version.agent_id, version.number)),
            number=version.number,
            content_sha256=version.content_sha256,
            changed_sections=version.changed_sections,
            create_time=_ts(version.create_time),
            creator=version.creator,
        )
        out.config.MergeFromString(version.config_bytes)  # in place, as in _draft_proto
        return out

    @staticmethod
    async def _agent_or_404(q: ConfigQueries, name: AgentName) -> AgentRecord:
        agent = await q.get_agent(name.tenant, name.agent)
        if agent is None:
            raise errors.NotFound(f"agent {name} does not exist", resource_name=str(name), resource_type="Agent")
        return agent

    @staticmethod
    async def _draft_or_404(q: ConfigQueries, name: DraftName) -> DraftRecord:
        draft = await q.get_draft(name.tenant, name.agent)
        if draft is None:
            raise errors.NotFound(
                f"agent {name.agent_name} does not exist", resource_name=str(name), resource_type="Draft"
            )
        return draft

    @staticmethod
    async def _lock_draft_or_404(
        q: ConfigQueries, name: DraftName, *, with_config: bool = True
    ) -> tuple[AgentRecord, DraftRecord]:
        found = await q.lock_draft(name.tenant, name.agent, with_config=with_config)
        if found is None:
            agent = name.agent_name
            raise errors.NotFound(f"agent {agent} does not exist", resource_name=str(agent), resource_type="Agent")
        return found

    @staticmethod
    async def _version_or_404(q: ConfigQueries, name: VersionName) -> VersionRecord:
        version = await q.get_version(name.tenant, name.agent, name.number)
        if version is None:
            raise errors.NotFound(f"{name} does not exist", resource_name=str(name), resource_type="Version")
        return version

    @staticmethod
    def _page_size(value: int) -> int:
        try:
            return paging.page_size(value)
        except ValueError:
            raise errors.InvalidArgument(
                f"page_size {value} is negative", [("page_size", "must be 0 (default) or positive")]
            ) from None

    @staticmethod
    def _position(token: str, scope: str) -> object:
        try:
            return paging.decode_token(token, scope)
        except paging.BadPageToken as exc:
            raise errors.InvalidArgument(str(exc), [("page_token", str(exc))]) from None

    @staticmethod
    def _check_etag(etag: str, current: DraftRecord, name: DraftName) -> None:
        if etag and revision_of(etag) != current.revision:
            raise _stale_etag(str(name))

    async def _write_draft(
        self, q: ConfigQueries, current: DraftRecord, config: resources_pb2.AgentConfig
    ) -> DraftRecord:
        sha = content_sha256(config)
        data = config.SerializeToString()
        if sha == current.content_sha256:
            # Same content: keep the etag, so no other writer is needlessly aborted.
            return dataclasses.replace(current, config_bytes=data)
        written = await q.write_draft(
            current.tenant,
            current.agent_id,
            data,
            sha,
            current.revision,
            self._clock(),
        )
        # The row is locked by this transaction, so the revision cannot have moved.
        assert written is not None
        return written

    # --- agents ---------------------------------------------------------------------------------

    async def CreateAgent(
        self, request: config_service_pb2.CreateAgentRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Agent:
        """Create an agent with an empty draft; ALREADY_EXISTS when the id is taken."""
        parent = TenantName.parse(request.parent, "parent")
        check_id(request.agent_id, "agent_id")
        display_name = request.agent.display_name
        if len(display_name) > MAX_DISPLAY_NAME_CHARS:
            raise errors.InvalidArgument(
                f"agent.display_name is {len(display_name)} characters; the limit is {MAX_DISPLAY_NAME_CHARS}",
                [("agent.display_name", f"at most {MAX_DISPLAY_NAME_CHARS} characters")],
            )
        if _CONTROL.search(display_name):
            raise errors.InvalidArgument(
                "agent.display_name contains control characters",
                [("agent.display_name", "use printable characters only (no NUL, tabs or line breaks)")],
            )
        name = AgentName(parent.tenant, request.agent_id)

        async def work(q: ConfigQueries) -> resources_pb2.Agent:
            created = await q.insert_agent(
                name.tenant, name.agent, display_name, self._clock(), b"", EMPTY_CONFIG_SHA256
            )
            if created is None:
                raise errors.AlreadyExists(f"agent {name} already exists", resource_name=str(name))
            return self._agent_proto(created)

        return await self._idempotent(
            name.tenant,
            _request_id(request.request_id),
            _METHOD + "CreateAgent",
            request,
            resources_pb2.Agent,
            work,
        )

    async def GetAgent(
        self, request: config_service_pb2.GetAgentRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Agent:
        """One agent."""
        name = AgentName.parse(request.name, "name")
        async with self._store.reading() as q:
            return self._agent_proto(await self._agent_or_404(q, name))

    async def ListAgents(
        self, request: config_service_pb2.ListAgentsRequest, context: grpc.aio.ServicerContext
    ) -> config_service_pb2.ListAgentsResponse:
        """A tenant's agents ordered by id, paginated."""
        parent = TenantName.parse(request.parent, "parent")
        size = self._page_size(request.page_size)
        scope = f"agents:{parent}"
        after = self._position(request.page_token, scope) if request.page_token else ""
        if not isinstance(after, str) or (after and not ID_RE.fullmatch(after)):
            raise _corrupt_token()
        async with self._store.reading() as q:
            rows = await q.list_agents(parent.tenant, after, size + 1)
        response = config_service_pb2.ListAgentsResponse(agents=[self._agent_proto(a) for a in rows[:size]])
        if len(rows) > size:
            response.next_page_token = paging.encode_token(scope, rows[size - 1].agent_id)
        return response

    # --- drafts ---------------------------------------------------------------------------------

    async def GetDraft(
        self, request: config_service_pb2.GetDraftRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Draft:
        """The agent's draft with its etag."""
        name = DraftName.parse(request.name, "name")
        async with self._store.reading() as q:
            agent = await self._agent_or_404(q, name.agent_name)
            draft = await self._draft_or_404(q, name)
        return self._draft_proto(agent, draft)

    async def UpdateDraft(
        self, request: config_service_pb2.UpdateDraftRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Draft:
        """Apply the masked fields to the draft (compare-and-set on the etag when one is sent)."""
        if not request.HasField("draft"):
            raise errors.InvalidArgument("draft is required", [("draft", "required")])
        name = DraftName.parse(request.draft.name, "draft.name")
        paths = list(request.update_mask.paths)
        if paths != ["*"]:
            try:
                validate_paths(paths)
            except UnknownFieldPath as exc:
                raise errors.InvalidArgument(
                    f"{exc}", [(f"update_mask.paths[{exc.index}]", exc.reason)], reason="UNKNOWN_FIELD_PATH"
                ) from None
        etag = request.draft.etag

        async def work(q: ConfigQueries) -> resources_pb2.Draft:
            # A whole-config replace needs neither the current config's bytes nor its parse (it
            # can be megabytes); apply_update_mask returns a fresh message, normalised in place.
            whole = not paths or paths == ["*"]
            agent, current = await self._lock_draft_or_404(q, name, with_config=not whole)
            self._check_etag(etag, current, name)
            # Set-but-empty sections are dropped so they never make 'identical' content differ.
            base = resources_pb2.AgentConfig() if whole else current.config()
            merged = normalize(apply_update_mask(base, request.draft.config, paths))
            too_big = [f for f in check_config(merged) if f.code in SIZE_LIMIT_CODES]
            if too_big:
                raise errors.InvalidArgument(
                    f"The draft is too large: {_summary(too_big)}",
                    [(_config_path("draft.config", f.field), f.message) for f in too_big],
                    reason="SIZE_LIMIT_EXCEEDED",
                )
            return self._draft_proto(agent, await self._write_draft(q, current, merged))

        return await self._idempotent(
            name.tenant,
            _request_id(request.request_id),
            _METHOD + "UpdateDraft",
            request,
            resources_pb2.Draft,
            work,
        )

    async def ValidateDraft(
        self, request: config_service_pb2.ValidateDraftRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.ValidationReport:
        """Run the pre-launch checklist over the draft."""
        name = DraftName.parse(request.name, "name")
        async with self._store.reading() as q:
            draft = await self._draft_or_404(q, name)
        findings = check_config(draft.config())
        return resources_pb2.ValidationReport(name=str(name), violations=[_violation(f) for f in findings])

    # --- publishing -----------------------------------------------------------------------------

    async def PublishDraft(
        self, request: config_service_pb2.PublishDraftRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.PublishJob:
        """Freeze the draft into a version (or reuse the latest) and submit a publish job.

        Version, publish request and both outbox messages commit in one transaction; checklist
        errors refuse the publish with FAILED_PRECONDITION and create nothing.
        """
        name = DraftName.parse(request.name, "name")
        request_id = _request_id(request.request_id)
        requester = _requester()
        trace_id = telemetry.current_trace_id()
        etag = request.etag

        async def work(q: ConfigQueries) -> resources_pb2.PublishJob:
            # The agent lock serialises publishes of one agent: version numbers stay gap-free.
            state = await q.publish_state(name.tenant, name.agent)
            if state is None:
                raise errors.NotFound(
                    f"agent {name.agent_name} does not exist", resource_name=str(name), resource_type="Draft"
                )
            draft = state.draft
            self._check_etag(etag, draft, name)
            config = draft.config()
            findings = check_config(config)
            if has_errors(findings):
                blocking = [f for f in findings if f.severity is Severity.ERROR]
                raise ChecklistFailed(
                    f"The draft has {len(blocking)} problem(s) to fix before publishing: {_summary(blocking)}",
                    blocking,
                )
            now = self._clock()
            number, sections = state.latest_version_number, state.latest_changed_sections
            new_version = None
            if not number or draft.content_sha256 != state.latest_content_sha256:
                previous = (
                    resources_pb2.AgentConfig.FromString(state.latest_config_bytes)
                    if state.latest_config_bytes is not None
                    else None
                )
                number, sections = number + 1, changed_sections(previous, config)
                # Stored by the statement that records the job below (one round trip less).
                new_version = VersionRecord(
                    tenant=name.tenant,
                    agent_id=name.agent,
                    number=number,
                    config_bytes=draft.config_bytes,
                    content_sha256=draft.content_sha256,
                    changed_sections=sections,
                    create_time=now,
                    creator=requester,
                )
            job_id = uuid.uuid4()
            agent_name = name.agent_name
            job = resources_pb2.PublishJob(
                name=str(agent_name.publish_job(str(job_id))),
                version=str(agent_name.version(number)),
                state=resources_pb2.PublishJob.State.STATE_SUBMITTED,
                create_time=_ts(now),
                update_time=_ts(now),
                deadline=_ts(now + self._deadline),
                changed_sections=sections,
                requester=requester,
                trace_id=trace_id,
            )
            await q.insert_publish_request(
                job_id=job_id,
                tenant=name.tenant,
                agent_id=name.agent,
                version_number=number,
                requester=requester,
                request_id=request_id,
                trace_id=trace_id,
                create_time=now,
                deadline=now + self._deadline,
                job=job.SerializeToString(),
                messages=self._events.job_submitted_messages(job, draft.content_sha256),
                new_version=new_version,
            )
            return job

        return await self._idempotent(
            name.tenant, request_id, _METHOD + "PublishDraft", request, resources_pb2.PublishJob, work
        )

    # --- versions -------------------------------------------------------------------------------

    async def GetVersion(
        self, request: config_service_pb2.GetVersionRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Version:
        """One immutable version."""
        name = VersionName.parse(request.name, "name")
        async with self._store.reading_one() as q:
            return self._version_proto(await self._version_or_404(q, name))

    async def ListVersions(
        self, request: config_service_pb2.ListVersionsRequest, context: grpc.aio.ServicerContext
    ) -> config_service_pb2.ListVersionsResponse:
        """An agent's versions, newest first; a page also ends when its configs grow large."""
        parent = AgentName.parse(request.parent, "parent")
        size = self._page_size(request.page_size)
        scope = f"versions:{parent}"
        below = self._position(request.page_token, scope) if request.page_token else None
        if below is not None and (type(below) is not int or not 1 <= below <= _MAX_VERSION):
            raise _corrupt_token()
        async with self._store.reading() as q:
            agent = await self._agent_or_404(q, parent)
            start = below if below is not None else agent.latest_version_number + 1
            sizes = await q.version_sizes(parent.tenant, parent.agent, start, size + 1)
            chosen: list[int] = []
            total = 0
            for number, nbytes in sizes[:size]:
                if chosen and total + nbytes > LIST_VERSIONS_BYTE_BUDGET:
                    break
                chosen.append(number)
                total += nbytes
            versions = await q.get_versions(parent.tenant, parent.agent, chosen)
        response = config_service_pb2.ListVersionsResponse(versions=[self._version_proto(v) for v in versions])
        if len(chosen) < len(sizes):
            response.next_page_token = paging.encode_token(scope, chosen[-1])
        return response

    async def DiffVersions(
        self, request: config_service_pb2.DiffVersionsRequest, context: grpc.aio.ServicerContext
    ) -> config_service_pb2.DiffVersionsResponse:
        """Changed field paths between two versions of one agent, with both values."""
        base = VersionName.parse(request.base, "base")
        target = VersionName.parse(request.target, "target")
        if base.agent_name != target.agent_name:
            raise errors.InvalidArgument(
                "base and target must be versions of the same agent",
                [("target", f"must be a version of {base.agent_name}")],
            )
        async with self._store.reading() as q:
            base_version = await self._version_or_404(q, base)
            target_version = await self._version_or_404(q, target)
        changes = diff_configs(base_version.config(), target_version.config())
        return config_service_pb2.DiffVersionsResponse(
            changes=[
                resources_pb2.FieldChange(field=c.field, base_value=c.base_value, target_value=c.target_value)
                for c in changes
            ]
        )

    async def RestoreVersion(
        self, request: config_service_pb2.RestoreVersionRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Draft:
        """Make the draft that version's config (publishing it then creates a new version)."""
        name = VersionName.parse(request.name, "name")
        draft_name = name.agent_name.draft
        etag = request.etag

        async def work(q: ConfigQueries) -> resources_pb2.Draft:
            agent, current = await self._lock_draft_or_404(q, draft_name, with_config=False)
            self._check_etag(etag, current, draft_name)
            version = await self._version_or_404(q, name)
            return self._draft_proto(agent, await self._write_draft(q, current, version.config()))

        return await self._idempotent(
            name.tenant,
            _request_id(request.request_id),
            _METHOD + "RestoreVersion",
            request,
            resources_pb2.Draft,
            work,
        )
