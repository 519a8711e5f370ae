"""Short references typed at a terminal expand to full resource names."""

from __future__ import annotations

import pytest

from chassis import auth
from speako.cli import refs

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def test_agent_short_form_expands():
    assert refs.agent_name("acme/front-desk") == "tenants/acme/agents/front-desk"


def test_full_names_pass_through_unchanged():
    assert refs.agent_name("tenants/acme/agents/front-desk") == "tenants/acme/agents/front-desk"
    assert refs.parent_name("tenants/acme") == "tenants/acme"
    job = "tenants/acme/agents/fd/publishJobs/0d6f2d1e-8a84-4c34-9a53-0f3b1c2d4e5f"
    assert refs.job_name(job) == job


def test_agent_without_tenant_uses_the_token_tenant():
    assert refs.agent_name("front-desk", "acme") == "tenants/acme/agents/front-desk"
    with pytest.raises(refs.RefError, match="TENANT/front-desk"):
        refs.agent_name("front-desk", None)


def test_malformed_agent_reference_is_refused():
    with pytest.raises(refs.RefError):
        refs.agent_name("a/b/c")
    with pytest.raises(refs.RefError):
        refs.agent_name("tenants/acme")


def test_parent_is_tenant_or_agent():
    assert refs.parent_name("acme") == "tenants/acme"
    assert refs.parent_name("acme/fd") == "tenants/acme/agents/fd"
    assert refs.parent_name(None, "acme") == "tenants/acme"


def test_draft_and_version_names():
    assert refs.draft_name("acme/fd") == "tenants/acme/agents/fd/draft"
    assert refs.draft_name("tenants/acme/agents/fd/draft") == "tenants/acme/agents/fd/draft"
    assert refs.version_name("acme/fd", 3) == "tenants/acme/agents/fd/versions/3"
    assert refs.version_name("acme/fd", "v2") == "tenants/acme/agents/fd/versions/2"
    assert refs.version_name("acme/fd@4") == "tenants/acme/agents/fd/versions/4"
    assert refs.version_name("tenants/acme/agents/fd/versions/5") == "tenants/acme/agents/fd/versions/5"
    with pytest.raises(refs.RefError):
        refs.version_name("acme/fd", "zero")
    with pytest.raises(refs.RefError):
        refs.version_name("acme/fd", 0)
    with pytest.raises(refs.RefError):
        refs.version_name("acme/fd")


def test_job_references():
    uid = "0d6f2d1e-8a84-4c34-9a53-0f3b1c2d4e5f"
    assert refs.is_job_ref(f"acme/fd/{uid}")
    assert refs.is_job_ref(f"tenants/acme/agents/fd/publishJobs/{uid}")
    assert not refs.is_job_ref("acme/fd")
    assert not refs.is_job_ref("acme")
    assert refs.job_name(f"acme/fd/{uid}") == f"tenants/acme/agents/fd/publishJobs/{uid}"
    assert refs.job_name(f"acme/fd/publishJobs/{uid}") == f"tenants/acme/agents/fd/publishJobs/{uid}"


def test_notification_references():
    assert refs.notification_name("acme/abc") == "tenants/acme/notifications/abc"
    assert refs.notification_name("abc", "acme") == "tenants/acme/notifications/abc"


def test_token_tenant_reads_the_claim_only_for_a_single_tenant():
    assert refs.token_tenant(auth.mint_token(SECRET, subject="x", tenant="acme", roles=["viewer"])) == "acme"
    assert refs.token_tenant(auth.mint_token(SECRET, subject="x", tenant="*", roles=["sre"])) is None
    assert refs.token_tenant("not-a-jwt") is None
    assert refs.token_tenant("a.%%%.c") is None
    assert refs.token_tenant(None) is None


def test_short_form_for_tables():
    assert refs.short("tenants/acme/agents/fd") == "acme/fd"
    assert refs.short("tenants/acme/agents/fd/versions/2") == "acme/fd/versions/2"
    assert refs.short("tenants/acme") == "acme"
    assert refs.version_number("tenants/acme/agents/fd/versions/12") == 12
    assert refs.version_number("") == 0
