"""Pure rules of the activation domain: lifecycle, E.164, bundle checks, deploy decisions, launch list."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.activation.domain.deploy import DeployOutcome, VerifiedBundle, decide_deploy, verify_bundle
from services.activation.domain.errors import (
    InvalidBundle,
    InvalidPhoneNumber,
    PreconditionsUnmet,
    Superseded,
)
from services.activation.domain.launch import launch_violations
from services.activation.domain.lifecycle import (
    AgentState,
    activation_target,
    deactivation_target,
    routes_calls,
)
from services.activation.domain.phone import is_e164, parse_e164
from services.activation.domain.status import AgentStatusView
from services.config.domain.checklist import Finding, Severity

AGENT = "tenants/acme/agents/front-desk"
SHA = "a" * 64


# --- lifecycle ---------------------------------------------------------------------------------


def test_draft_and_inactive_activate_to_active_and_active_stays():
    assert activation_target(AgentState.DRAFT) is AgentState.ACTIVE
    assert activation_target(AgentState.INACTIVE) is AgentState.ACTIVE
    assert activation_target(AgentState.ACTIVE) is None


def test_active_deactivates_inactive_stays_draft_is_refused():
    assert deactivation_target(AGENT, AgentState.ACTIVE) is AgentState.INACTIVE
    assert deactivation_target(AGENT, AgentState.INACTIVE) is None
    with pytest.raises(PreconditionsUnmet) as err:
        deactivation_target(AGENT, AgentState.DRAFT)
    assert [(v.type, v.subject) for v in err.value.violations] == [("STATE", AGENT)]


def test_only_active_agents_take_calls():
    assert [s for s in AgentState if routes_calls(s)] == [AgentState.ACTIVE]


# --- E.164 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["+14155550123", "+442071838750", "+12", "+123456789012345"])
def test_e164_accepts(number):
    assert is_e164(number)
    assert parse_e164(number, "phone_number") == number


@pytest.mark.parametrize(
    "number",
    [
        "14155550123",
        "+04155550123",
        "+1",
        "+1234567890123456",
        "+1 415 555 0123",
        "+1-415",
        "+1415555012a",
        "++14155550123",
        "+14155550123\n",
        "tel:+14155550123",
    ],
)
def test_e164_rejects(number):
    assert not is_e164(number)
    with pytest.raises(InvalidPhoneNumber) as err:
        parse_e164(number, "phone_number")
    assert err.value.field == "phone_number"


def test_e164_empty_is_required():
    with pytest.raises(InvalidPhoneNumber, match="required"):
        parse_e164("", "called_number")


# --- bundle verification -----------------------------------------------------------------------


def _verify(**overrides):
    args = dict(
        agent=AGENT,
        version=f"{AGENT}/versions/3",
        version_agent=AGENT,
        version_number=3,
        has_config=True,
        declared_sha256=SHA,
        computed_sha256=SHA,
    )
    args.update(overrides)
    return verify_bundle(**args)


def test_consistent_bundle_verifies():
    assert _verify() == VerifiedBundle(AGENT, f"{AGENT}/versions/3", 3, SHA)


def test_sha_mismatch_is_rejected_with_both_hashes():
    with pytest.raises(InvalidBundle) as err:
        _verify(computed_sha256="b" * 64)
    ((field, description),) = err.value.field_violations
    assert field == "bundle.content_sha256" and SHA in description and "b" * 64 in description


def test_version_of_another_agent_and_missing_config_and_bad_sha_all_reported():
    with pytest.raises(InvalidBundle) as err:
        _verify(version_agent="tenants/acme/agents/other", has_config=False, declared_sha256="XYZ")
    assert [f for f, _ in err.value.field_violations] == [
        "bundle.version",
        "bundle.config",
        "bundle.content_sha256",
    ]


# --- deploy decision ---------------------------------------------------------------------------


def _bundle(n: int, sha: str = SHA) -> VerifiedBundle:
    return VerifiedBundle(AGENT, f"{AGENT}/versions/{n}", n, sha)


def test_first_and_newer_versions_go_live():
    assert decide_deploy(_bundle(1), None, None) is DeployOutcome.MAKE_LIVE
    assert decide_deploy(_bundle(5), 4, None) is DeployOutcome.MAKE_LIVE


def test_redeploy_of_a_deployed_version_is_idempotent_even_when_superseded_since():
    assert decide_deploy(_bundle(4), 4, SHA) is DeployOutcome.ALREADY_DEPLOYED
    assert decide_deploy(_bundle(3), 4, SHA) is DeployOutcome.ALREADY_DEPLOYED


def test_older_never_deployed_version_is_superseded_naming_live():
    with pytest.raises(Superseded) as err:
        decide_deploy(_bundle(3), 4, None)
    assert err.value.live_version == 4 and err.value.offered_version == 3


def test_same_version_with_other_content_is_rejected():
    with pytest.raises(InvalidBundle):
        decide_deploy(_bundle(4, "c" * 64), 4, SHA)


# --- launch list -------------------------------------------------------------------------------


def _finding(severity: Severity, field: str = "greetings.opening_greeting") -> Finding:
    return Finding(field=field, code="X", message="is wrong", severity=severity)


def test_launch_list_reports_every_unmet_item():
    violations = launch_violations(AGENT, None, [], [])
    assert [(v.type, v.subject) for v in violations] == [("LIVE_VERSION", AGENT), ("PHONE_NUMBER", AGENT)]


def test_launch_list_reports_each_checklist_error_of_the_live_version_not_warnings():
    live = f"{AGENT}/versions/2"
    findings = [
        _finding(Severity.ERROR),
        _finding(Severity.WARNING, "fallback_message"),
        _finding(Severity.ERROR, "flow.nodes[1]"),
    ]
    violations = launch_violations(AGENT, live, [], findings)
    assert [(v.type, v.subject) for v in violations] == [
        ("PHONE_NUMBER", AGENT),
        ("CHECKLIST", live),
        ("CHECKLIST", live),
    ]
    assert violations[1].description.startswith("greetings.opening_greeting:")
    assert violations[2].description.startswith("flow.nodes[1]:")


def test_launch_list_empty_when_ready():
    assert launch_violations(AGENT, f"{AGENT}/versions/1", ["+14155550123"], [_finding(Severity.WARNING)]) == []


# --- status ------------------------------------------------------------------------------------


def test_status_round_trips_through_json_and_sums_calls():
    status = AgentStatusView(
        AGENT,
        AgentState.ACTIVE,
        f"{AGENT}/versions/2",
        ("+14155550123",),
        ((f"{AGENT}/versions/1", 2), (f"{AGENT}/versions/2", 5)),
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    )
    assert AgentStatusView.from_json(status.to_json()) == status
    assert status.active_calls == 7
