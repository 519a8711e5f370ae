import pytest
from hypothesis import given
from hypothesis import strategies as st

from chassis.errors import InvalidArgument
from chassis.names import AgentName, PublishJobName, VersionName, parse_tenant_or_agent, tenant_of


def test_agent_name_round_trips():
    name = AgentName.parse("tenants/acme/agents/front-desk")
    assert (name.tenant, name.agent) == ("acme", "front-desk")
    assert str(name.version(3)) == "tenants/acme/agents/front-desk/versions/3"
    assert VersionName.parse(str(name.version(3))).number == 3


@pytest.mark.parametrize(
    "value",
    [
        "",
        "tenants/acme",
        "tenants/Acme/agents/x",
        "tenants/acme/agents/",
        "tenants/acme/agents/x/y",
        "tenants/acme/agents/1x",
        "tenants/a/agents/" + "x" * 64,
    ],
)
def test_malformed_agent_names_name_the_field(value):
    with pytest.raises(InvalidArgument) as err:
        AgentName.parse(value, "parent")
    assert err.value.field_violations[0][0] == "parent"


def test_version_zero_is_not_a_version():
    with pytest.raises(InvalidArgument):
        VersionName.parse("tenants/a/agents/b/versions/0")


def test_publish_job_names_need_a_uuid():
    ok = PublishJobName.parse("tenants/a/agents/b/publishJobs/0b0e5e4e-1c52-4a43-9d8a-6f0c6b1e2d3f")
    assert ok.job_id == "0b0e5e4e-1c52-4a43-9d8a-6f0c6b1e2d3f"
    with pytest.raises(InvalidArgument):
        PublishJobName.parse("tenants/a/agents/b/publishJobs/not-a-uuid-not-a-uuid-not-a-uuid-123")


def test_parent_may_be_tenant_or_agent():
    assert str(parse_tenant_or_agent("tenants/a")) == "tenants/a"
    assert str(parse_tenant_or_agent("tenants/a/agents/b")) == "tenants/a/agents/b"


@given(st.text(max_size=80))
def test_parsers_never_crash_on_any_text(value):
    for parse in (AgentName.parse, VersionName.parse, PublishJobName.parse):
        try:
            parse(value)
        except InvalidArgument:
            pass
    assert tenant_of(value) is None or value.startswith("tenants/")


def test_authorizer_caches_a_token_only_until_it_expires():
    import time

    from chassis import auth
    from chassis.errors import Unauthenticated

    secret = "a-test-secret-of-at-least-32-bytes!!"
    authorizer = auth.Authorizer(secret, {})
    tok = auth.mint_token(secret, subject="s", tenant="acme", roles=["viewer"], ttl_s=60)
    first = authorizer.authenticate({"authorization": f"Bearer {tok}"})
    assert authorizer.authenticate({"authorization": f"Bearer {tok}"}) is first
    # An entry past its exp is verified again (and now fails on expiry).
    authorizer._verified[tok] = auth.Principal("s", "acme", frozenset({"viewer"}), expires_at=time.time() - 1)
    expired = auth.mint_token(secret, subject="s", tenant="acme", roles=["viewer"], ttl_s=-30)
    try:
        authorizer.authenticate({"authorization": f"Bearer {expired}"})
        raise AssertionError("expired token accepted")
    except Unauthenticated:
        pass
    assert authorizer.authenticate({"authorization": f"Bearer {tok}"}) is not first


def test_a_trailing_newline_is_not_part_of_a_valid_name():
    with pytest.raises(InvalidArgument):
        AgentName.parse("tenants/a/agents/b\n")


def test_a_subject_with_control_characters_is_refused():
    from chassis import auth
    from chassis.errors import Unauthenticated

    secret = "a-test-secret-of-at-least-32-bytes!!"
    tok = auth.mint_token(secret, subject="bad\x00sub", tenant="acme", roles=["viewer"])
    with pytest.raises(Unauthenticated):
        auth.verify_token(secret, tok)
