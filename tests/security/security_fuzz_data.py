"""hypothesis strategies for hostile requests: any request message, driven by its descriptor.

Fields are filled by name where the name says what they hold (resource names, ids, tokens, phone
numbers...), mixing valid values of this tenant or another with malformed, huge and odd ones.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

from services.config.domain.canonical import content_sha256
from speako.config.v1 import resources_pb2 as res
from tests.factories import valid_config
from tests.security.security_support import OTHER, OWN

TENANTS = (OWN, OTHER)
# Fixed at import: strategies must not change between hypothesis' runs of one test.
_NOW = int(time.time())
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
# Valid protobuf Timestamp range (0001-01-01 .. 9999-12-31) and a little beyond it.
TS_SECONDS = (-62135596800 - 10, 253402300799 + 10)

NASTY_STRINGS = [
    "",
    " ",
    "/",
    "*",
    "tenants",
    "tenants/",
    "tenants//agents/x",
    "tenants/*/agents/front-desk",
    f"tenants/{OWN}/agents/front-desk/../../../tenants/{OTHER}",
    f"tenants/{OWN}/agents/front-desk\n",
    f"tenants/{OWN}\x00/agents/front-desk",
    f"tenants/{OWN}/agents/front-desk\x00",
    "tenants/%61cme/agents/x",
    f"TENANTS/{OWN.upper()}/AGENTS/FRONT-DESK",
    f" tenants/{OWN}/agents/front-desk",
    f"tenants/{OWN}/agents/front-desk/draft/extra",
    f"tenants/{OWN}/agents/front-desk/versions/0",
    f"tenants/{OWN}/agents/front-desk/versions/-1",
    f"tenants/{OWN}/agents/front-desk/versions/1.5",
    f"tenants/{OWN}/agents/front-desk/versions/99999999999999999999999",
    f"tenants/{OWN}/agents/front-desk/versions/999999999999999999",
    f"tenants/{OWN}/agents/front-desk/publishJobs/not-a-uuid",
    f"tenants/{OWN}/agents/front-desk/publishJobs/{'g' * 36}",
    f"tenants/{OWN}/notifications/{'9' * 64}",
    f"tenants/{OWN}/notifications/-",
    "calls/../../etc/passwd",
    "calls/" + "z" * 64,
    "notices/x",
    "' OR '1'='1' --",
    "'; DROP TABLE agents; --",
    "tenants/acmé/agents/front-desk",
    "tenants/a/agents/🦄",
    "\u202e",
    "\ud7ff",
    "%s%s%n",
    "{business_name}",
    "null",
    "None",
    "0",
    "-1",
    "NaN",
    "+",
    "+0",
    "+1",
    "+123456789012345678",
    "+14155550100 ",
    "00441234567",
    "a" * 64,
    "a" * 63,
]


def huge_strings() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(1_000, 120_000).map(lambda n: "a" * n),
        st.integers(1_000, 60_000).map(lambda n: f"tenants/{OWN}/agents/" + "b" * n),
        st.integers(100, 20_000).map(lambda n: "\x00" * n),
        st.integers(100, 20_000).map(lambda n: "é🦄" * n),
    )


def garbage() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=40), huge_strings())


def ids() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["front-desk", "back-office", "ghost", "fz-one", "fz-two"]),
        st.from_regex(r"\A[a-z][a-z0-9-]{0,62}\Z"),
    )


@dataclass
class Known:
    """Names and tokens of the seeded world, so generated requests also hit real resources."""

    job_names: list[str] = field(default_factory=list)
    notification_names: list[str] = field(default_factory=list)
    call_names: list[str] = field(default_factory=list)
    notice_names: list[str] = field(default_factory=list)
    page_tokens: list[str] = field(default_factory=list)
    phone_numbers: list[str] = field(default_factory=list)
    etags: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=lambda: [str(uuid.uuid4()) for _ in range(3)])


def resource_names(known: Known) -> st.SearchStrategy[str]:
    """Any kind of resource name, of this tenant or another, existing or not."""
    tenant = st.sampled_from(TENANTS)
    agent = st.tuples(tenant, ids()).map(lambda ta: f"tenants/{ta[0]}/agents/{ta[1]}")
    number = st.one_of(st.integers(1, 4), st.integers(1, 10**18 - 1))
    valid = st.one_of(
        tenant.map(lambda t: f"tenants/{t}"),
        agent,
        agent.map(lambda a: f"{a}/draft"),
        st.tuples(agent, number).map(lambda an: f"{an[0]}/versions/{an[1]}"),
        st.tuples(agent, st.uuids()).map(lambda au: f"{au[0]}/publishJobs/{au[1]}"),
        st.tuples(tenant, st.uuids()).map(lambda tu: f"tenants/{tu[0]}/notifications/{tu[1]}"),
        st.uuids().map(lambda u: f"notices/{u}"),
        st.uuids().map(lambda u: f"calls/{u}"),
    )
    seeded = [*known.job_names, *known.notification_names, *known.call_names, *known.notice_names]
    choices = [valid, valid, garbage()]
    if seeded:
        choices.append(st.sampled_from(seeded))
    return st.one_of(*choices)


NASTY_JSON: list[Any] = [
    10**30,
    -(10**30),
    2**63,
    -(2**63) - 1,
    2**63 - 1,
    -1,
    0,
    True,
    False,
    None,
    1.5,
    float("1e308"),
    "",
    "x",
    "\x00",
    "a" * 5000,
    [],
    {},
    [1, 2],
    {"p": 1},
]


def forged_tokens(known: Known) -> st.SearchStrategy[str]:
    """Real page tokens with one JSON value swapped for a hostile one (scope/fingerprint kept)."""
    if not known.page_tokens:
        return st.nothing()

    def forge(token: str, key_index: int, value: Any) -> str:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except ValueError:
            return token
        if isinstance(data, dict) and data:
            keys = sorted(data)
            data[keys[key_index % len(keys)]] = value
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return st.builds(forge, st.sampled_from(known.page_tokens), st.integers(0, 5), st.sampled_from(NASTY_JSON))


def phone_numbers(known: Known) -> st.SearchStrategy[str]:
    pool = [*known.phone_numbers, "+14155550199", "+442071838750", "+61291234567"]
    return st.one_of(st.sampled_from(pool), st.from_regex(r"\A\+[1-9][0-9]{1,14}\Z"), garbage())


def _uuid_or_garbage(pool: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), st.uuids().map(str), st.sampled_from(pool), garbage())


def _paths() -> st.SearchStrategy[list[str]]:
    valid = [
        "greetings",
        "greetings.opening_greeting",
        "voice",
        "voice.additional_languages",
        "personality",
        "personality.tone",
        "tools",
        "knowledge",
        "knowledge.faqs",
        "flow",
        "flow.nodes",
        "business_hours",
        "fallback_message",
        "pronunciations",
        "*",
    ]
    return st.lists(st.one_of(st.sampled_from(valid), garbage()), max_size=5)


def configs() -> st.SearchStrategy[res.AgentConfig]:
    """Valid configs, valid configs with hostile fields, and random configs."""
    random_config = messages(res.AgentConfig.DESCRIPTOR, Known(), depth=3)
    mutated = st.builds(_merge, random_config)
    return st.one_of(st.builds(valid_config), mutated, random_config)


def _merge(extra: res.AgentConfig) -> res.AgentConfig:
    config = valid_config()
    config.MergeFrom(extra)
    return config


FieldStrategy = Callable[[Known], st.SearchStrategy[Any]]

BY_NAME: dict[str, FieldStrategy] = {
    "name": resource_names,
    "parent": resource_names,
    "base": resource_names,
    "target": resource_names,
    "agent": resource_names,
    "version": resource_names,
    "agent_id": lambda k: st.one_of(ids(), garbage()),
    "request_id": lambda k: _uuid_or_garbage(k.request_ids),
    "etag": lambda k: st.one_of(st.just(""), st.sampled_from(k.etags or [""]), garbage()),
    "page_token": lambda k: st.one_of(st.just(""), forged_tokens(k), st.sampled_from(k.page_tokens or [""]), garbage()),
    "page_size": lambda k: st.one_of(st.integers(-2, 1002), st.integers(*INT32)),
    "phone_number": phone_numbers,
    "called_number": phone_numbers,
    "caller_number": phone_numbers,
    "content_sha256": lambda k: st.one_of(st.just("0" * 64), st.just(""), garbage()),
    "config": lambda k: configs(),
    "display_name": lambda k: st.one_of(st.text(max_size=60), garbage()),
}


def _scalar(f: FieldDescriptor) -> st.SearchStrategy[Any]:
    if f.type == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.text(max_size=30), garbage())
    if f.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if f.type == FieldDescriptor.TYPE_ENUM:
        # Known values and unknown ones (proto3 enums are open: the server must reject those).
        return st.one_of(
            st.sampled_from([v.number for v in f.enum_type.values]), st.integers(-5, 40), st.integers(*INT32)
        )
    if f.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return st.integers(*INT32)
    if f.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return st.integers(*INT64)
    if f.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if f.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if f.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    raise TypeError(f"no strategy for {f.full_name}")


def _timestamps() -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(
        st.one_of(st.integers(_NOW - 86_400, _NOW + 86_400 * 30), st.integers(*TS_SECONDS), st.integers(*INT64)),
        st.one_of(st.just(0), st.integers(0, 999_999_999), st.integers(-(2**31), 2**31 - 1)),
    )


def messages(descriptor: Descriptor, known: Known, depth: int = 4) -> st.SearchStrategy[Any]:
    """A message of this type with a random subset of its fields set to hostile-or-valid values."""
    cls = _message_class(descriptor)

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        msg = cls()
        if descriptor.full_name == "google.protobuf.Timestamp":
            msg.seconds, msg.nanos = draw(_timestamps())
            return msg
        if descriptor.full_name == "google.protobuf.FieldMask":
            msg.paths.extend(draw(_paths()))
            return msg
        for f in descriptor.fields:
            if not draw(st.booleans()):
                continue
            if f.name in BY_NAME and not (f.message_type and f.name != "config"):
                values = BY_NAME[f.name](known)
            elif f.type == FieldDescriptor.TYPE_MESSAGE:
                if f.message_type.GetOptions().map_entry:
                    entries = draw(
                        st.dictionaries(
                            st.one_of(st.text(max_size=20), garbage()),
                            st.one_of(st.text(max_size=20), garbage()),
                            max_size=4,
                        )
                    )
                    getattr(msg, f.name).update(entries)
                    continue
                if depth <= 0:
                    continue
                values = messages(f.message_type, known, depth - 1)
            else:
                values = _scalar(f)
            if f.is_repeated:
                items = draw(st.lists(values, max_size=4))
                container = getattr(msg, f.name)
                if f.type == FieldDescriptor.TYPE_MESSAGE:
                    for item in items:
                        container.add().CopyFrom(item)
                else:
                    container.extend(items)
            elif f.type == FieldDescriptor.TYPE_MESSAGE:
                getattr(msg, f.name).CopyFrom(draw(values))
            else:
                setattr(msg, f.name, draw(values))
        if descriptor.full_name == "speako.activation.v1.Bundle" and msg.HasField("config") and draw(st.booleans()):
            # A correctly digested bundle gets past the digest check and into the deploy rules.
            msg.content_sha256 = content_sha256(msg.config)
        return msg

    return build()


def _message_class(descriptor: Descriptor) -> Any:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


def forge_token(token: str, key: str, value: Any) -> str:
    """A real page token with one JSON member replaced (its scope or fingerprint kept)."""
    data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    data[key] = value
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def templates(known: Known) -> dict[str, Callable[[str], Any]]:
    """A valid request per unary RPC for tenant t, naming seeded resources: the fuzzer keeps a
    random subset of its fields, so hostile values also reach the checks deep inside handlers."""
    from google.protobuf import field_mask_pb2, timestamp_pb2

    from speako.activation.v1 import activation_service_pb2 as act
    from speako.activation.v1 import resources_pb2 as act_res
    from speako.activation.v1 import runtime_service_pb2 as rt
    from speako.config.v1 import config_service_pb2 as cfg
    from speako.notifier.v1 import notifier_service_pb2 as ntf
    from speako.notifier.v1 import resources_pb2 as ntf_res

    def agent(t: str) -> str:
        return f"tenants/{t}/agents/front-desk"

    def of_tenant(names: list[str], t: str, fallback: str) -> str:
        return next((n for n in names if n.startswith(f"tenants/{t}/")), fallback)

    def bundle(t: str) -> Any:
        config = valid_config("Bundle {business_name}.")
        return rt.DeployBundleRequest(
            bundle=act_res.Bundle(
                agent=agent(t), version=f"{agent(t)}/versions/9", content_sha256=content_sha256(config), config=config
            )
        )

    day = timestamp_pb2.Timestamp(seconds=_NOW - 86_400)
    return {
        "CreateAgent": lambda t: cfg.CreateAgentRequest(
            parent=f"tenants/{t}", agent_id="fz-one", agent=res.Agent(display_name="Fuzz")
        ),
        "GetAgent": lambda t: cfg.GetAgentRequest(name=agent(t)),
        "ListAgents": lambda t: cfg.ListAgentsRequest(parent=f"tenants/{t}", page_size=10),
        "GetDraft": lambda t: cfg.GetDraftRequest(name=f"{agent(t)}/draft"),
        "UpdateDraft": lambda t: cfg.UpdateDraftRequest(
            draft=res.Draft(name=f"{agent(t)}/draft", config=valid_config("Hey {caller_name}.")),
            update_mask=field_mask_pb2.FieldMask(paths=["greetings"]),
        ),
        "ValidateDraft": lambda t: cfg.ValidateDraftRequest(name=f"{agent(t)}/draft"),
        "PublishDraft": lambda t: cfg.PublishDraftRequest(name=f"{agent(t)}/draft"),
        "GetVersion": lambda t: cfg.GetVersionRequest(name=f"{agent(t)}/versions/1"),
        "ListVersions": lambda t: cfg.ListVersionsRequest(parent=agent(t), page_size=1),
        "DiffVersions": lambda t: cfg.DiffVersionsRequest(
            base=f"{agent(t)}/versions/1", target=f"{agent(t)}/versions/2"
        ),
        "RestoreVersion": lambda t: cfg.RestoreVersionRequest(name=f"{agent(t)}/versions/1"),
        "GetPublishJob": lambda t: ntf.GetPublishJobRequest(name=of_tenant(known.job_names, t, "")),
        "ListPublishJobs": lambda t: ntf.ListPublishJobsRequest(
            parent=f"tenants/{t}", page_size=1, states=[res.PublishJob.STATE_PUBLISHED], create_time_start=day
        ),
        "ListNotifications": lambda t: ntf.ListNotificationsRequest(
            parent=f"tenants/{t}", page_size=1, category=ntf_res.Notification.CATEGORY_MAINTENANCE
        ),
        "MarkNotificationRead": lambda t: ntf.MarkNotificationReadRequest(
            name=of_tenant(known.notification_names, t, "")
        ),
        "CreateMaintenanceNotice": lambda t: ntf.CreateMaintenanceNoticeRequest(
            notice=ntf_res.MaintenanceNotice(
                title="Fuzz",
                message="m",
                start_time=timestamp_pb2.Timestamp(seconds=_NOW + 86_400 * 400),
                end_time=timestamp_pb2.Timestamp(seconds=_NOW + 86_400 * 401),
            )
        ),
        "GetAgentStatus": lambda t: act.GetAgentStatusRequest(name=agent(t)),
        "AssignPhoneNumber": lambda t: act.AssignPhoneNumberRequest(name=agent(t), phone_number="+14155550177"),
        "ReleasePhoneNumber": lambda t: act.ReleasePhoneNumberRequest(name=agent(t), phone_number="+14155550177"),
        "ActivateAgent": lambda t: act.ActivateAgentRequest(name=agent(t)),
        "DeactivateAgent": lambda t: act.DeactivateAgentRequest(name=f"tenants/{t}/agents/back-office"),
        "RouteCall": lambda t: act.RouteCallRequest(
            called_number=known.phone_numbers[0] if known.phone_numbers else "+14155550101"
        ),
        "GetCall": lambda t: act.GetCallRequest(name=known.call_names[0] if known.call_names else "calls/x"),
        "EndCall": lambda t: act.EndCallRequest(name=known.call_names[-1] if known.call_names else "calls/x"),
        "DeployBundle": bundle,
    }


def hostile_requests(method: str, descriptor: Descriptor, known: Known, tenant: str) -> st.SearchStrategy[Any]:
    """Either a wholly random request, or the RPC's valid template for ``tenant`` with a random
    subset of its fields replaced by random (mostly hostile) ones."""
    template = templates(known).get(method)
    random_request = messages(descriptor, known)
    if template is None:
        return random_request

    @st.composite
    def mixed(draw: st.DrawFn) -> Any:
        base = template(tenant)
        noise = draw(random_request)
        for f, _ in noise.ListFields():
            if draw(st.booleans()):
                base.ClearField(f.name)
                # Copy the field through a message holding only it (works for every field kind).
                only = type(noise)()
                only.MergeFrom(noise)
                for other, _ in only.ListFields():
                    if other.name != f.name:
                        only.ClearField(other.name)
                base.MergeFrom(only)
        return base

    return st.one_of(random_request, mixed(), mixed())
