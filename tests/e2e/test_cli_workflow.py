"""The `speako` command line driven against the four services running as real processes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from speako.cli import main
from speako.cli.protodata import message_to_dict, to_yaml
from tests.factories import valid_config
from tests.harness import Platform

AGENT = "acme/front-desk"
FULL = "tenants/acme/agents/front-desk"


@dataclass
class Cli:
    """Runs `speako ...` in-process with the platform's addresses and a token."""

    platform: Platform
    token: str

    def __call__(
        self, *args: str, input: str | None = None, token: str | None = None, editor: str | None = None
    ) -> Result:
        env = {
            "EDITOR": editor,
            "VISUAL": None,
            "SPEAKO_CONFIG_ADDR": self.platform.addr("config"),
            "SPEAKO_NOTIFIER_ADDR": self.platform.addr("notifier"),
            "SPEAKO_ACTIVATION_ADDR": self.platform.addr("activation"),
            "SPEAKO_TOKEN": token or self.token,
            "SPEAKO_OUTPUT": None,
        }
        return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self(*args, input=input)
        assert result.exit_code == 0, f"speako {' '.join(args)} -> {result.exit_code}\n{result.output}"
        return result

    def json(self, *args: str) -> object:
        return json.loads(self.ok(*args, "-o", "json").stdout)


@pytest.fixture
def cli(platform, token) -> Cli:
    return Cli(platform, token(["admin"], "acme", "alice@acme"))


def write_config(tmp_path: Path, name: str = "config.yaml", greeting: str | None = None) -> str:
    config = valid_config(greeting) if greeting else valid_config()
    path = tmp_path / name
    path.write_text(to_yaml(message_to_dict(config)))
    return str(path)


async def test_create_edit_validate_publish_history_diff_restore_rollback(cli, tmp_path):
    created = cli.ok("agents", "create", AGENT, "--display-name", "Front desk")
    assert FULL in created.stdout
    agents = cli.json("agents", "list", "acme")
    assert [a["name"] for a in agents["agents"]] == [FULL]

    # A whole config from a file, then one field by path.
    cli.ok("draft", "edit", AGENT, "-f", write_config(tmp_path))
    greeting = "Hi, thanks for calling {business_name}"
    cli.ok("draft", "set", AGENT, "greetings.opening_greeting", greeting)
    draft = cli.json("draft", "show", AGENT)
    assert draft["config"]["greetings"]["opening_greeting"] == greeting
    assert draft["has_unpublished_changes"] is True

    validated = cli.ok("draft", "validate", AGENT)
    assert "ready to publish" in validated.stdout

    published = cli.ok("publish", AGENT)
    out = published.stdout
    assert out.index("Submitting") < out.index("Published version 1")
    assert f"{FULL}/versions/1" in out

    # Version 2 changes the greeting.
    cli.ok("draft", "set", AGENT, "greetings.opening_greeting", "Hello from {business_name}!")
    second = cli("publish", AGENT, "-o", "json")
    assert second.exit_code == 0, second.output
    job2 = json.loads(second.stdout)
    assert job2["state"] == "STATE_PUBLISHED" and job2["version"] == f"{FULL}/versions/2"
    assert "Processing" in second.stderr

    history = cli.json("versions", "history", AGENT)
    assert [v["number"] for v in history["versions"]] == [2, 1]
    table = cli.ok("versions", "history", AGENT).stdout
    assert "* 2" in table  # the live version is marked

    diff = cli.ok("versions", "diff", AGENT, "1", "2").stdout
    assert "~ greetings.opening_greeting" in diff
    assert f'- "{greeting}"' in diff
    assert '+ "Hello from {business_name}!"' in diff
    changes = cli.json("versions", "diff", AGENT, "2")["changes"]
    assert [c["field"] for c in changes] == ["greetings.opening_greeting"]

    restored = cli.ok("versions", "restore", AGENT, "1")
    assert "publish" in restored.stdout
    assert cli.json("draft", "show", AGENT)["config"]["greetings"]["opening_greeting"] == greeting

    # Declining the confirmation publishes nothing.
    declined = cli("versions", "rollback", AGENT, "1", input="n\n")
    assert declined.exit_code != 0
    assert len(cli.json("jobs", "list", AGENT)["publish_jobs"]) == 2

    rolled = cli.ok("versions", "rollback", AGENT, "1", "--yes")
    assert "Published version 3" in rolled.stdout
    status = cli.json("agents", "status", AGENT)
    assert status["status"]["live_version"] == f"{FULL}/versions/3"
    assert cli.json("versions", "show", AGENT, "3")["config"]["greetings"]["opening_greeting"] == greeting
    assert cli.json("versions", "diff", AGENT, "1", "3")["changes"] == []


async def test_errors_are_one_clear_line_with_a_non_zero_exit(cli, tmp_path):
    cli.ok("agents", "create", AGENT)

    bad_path = cli("draft", "set", AGENT, "greetings.opening_greting", "Hi")
    assert bad_path.exit_code == 2
    lines = bad_path.stderr.strip().splitlines()
    assert len(lines) == 1, bad_path.stderr
    assert "did you mean 'greetings.opening_greeting'" in lines[0]
    assert "Traceback" not in bad_path.output
    bad_value = cli("draft", "set", AGENT, "personality.tone", "grumpy")
    assert bad_value.exit_code == 2 and "friendly" in bad_value.stderr

    # The checklist refuses the publish: FAILED_PRECONDITION with the field named, nothing created.
    cli.ok("draft", "edit", AGENT, "-f", write_config(tmp_path, greeting="Hi {nope}"))
    refused = cli("publish", AGENT)
    assert refused.exit_code == 1
    line = refused.stderr.strip()
    assert "\n" not in line
    assert line.startswith("error: FAILED_PRECONDITION")
    assert "greetings.opening_greeting" in line
    assert cli.json("versions", "history", AGENT)["versions"] == []

    invalid = cli("draft", "validate", AGENT)
    assert invalid.exit_code == 1
    assert "greetings.opening_greeting" in invalid.stdout and "ERROR" in invalid.stdout

    duplicate = cli("agents", "create", AGENT)
    assert duplicate.exit_code == 1
    assert duplicate.stderr.strip().startswith("error: ALREADY_EXISTS")

    missing = cli("versions", "show", AGENT, "9")
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.stderr

    bad_id = cli("agents", "create", "acme/Front Desk")
    assert bad_id.exit_code == 1
    assert "INVALID_ARGUMENT" in bad_id.stderr and "agent_id" in bad_id.stderr

    other_tenant = cli("agents", "list", "globex")
    assert other_tenant.exit_code == 1 and "PERMISSION_DENIED" in other_tenant.stderr

    no_token = cli("agents", "list", "acme", token="not-a-jwt")
    assert no_token.exit_code == 1
    assert "UNAUTHENTICATED" in no_token.stderr and "SPEAKO_TOKEN" in no_token.stderr

    stale = tmp_path / "stale.yaml"
    stale.write_text(cli.ok("draft", "show", AGENT).stdout)
    cli.ok("draft", "set", AGENT, "fallback_message", "Sorry?")
    conflict = cli("draft", "edit", AGENT, "-f", str(stale))
    assert conflict.exit_code == 1 and "ABORTED" in conflict.stderr and "--force" in conflict.stderr
    cli.ok("draft", "edit", AGENT, "-f", str(stale), "--force")


async def test_read_commands_print_parseable_json_and_yaml(cli, token, tmp_path):
    cli.ok("agents", "create", AGENT)
    cli.ok("draft", "edit", AGENT, "-f", write_config(tmp_path))
    submitted = json.loads(cli.ok("publish", AGENT, "--no-follow", "-o", "json").stdout)
    assert submitted["state"] == "STATE_SUBMITTED"
    job = submitted["name"]

    watched = cli("jobs", "watch", job, "-o", "json")
    assert watched.exit_code == 0, watched.output
    assert json.loads(watched.stdout)["state"] == "STATE_PUBLISHED"

    shown = cli.json("jobs", "show", job)
    assert shown["name"] == job and shown["attempts"] >= 1
    assert cli.json("jobs", "list", "acme", "--state", "published")["publish_jobs"][0]["name"] == job
    assert cli.json("jobs", "list", "acme", "--state", "failed")["publish_jobs"] == []
    assert cli.json("jobs", "list", "acme", "--since", "1h")["publish_jobs"][0]["name"] == job
    assert cli.json("jobs", "list", "acme", "--until", "1h")["publish_jobs"] == []
    report = cli.json("draft", "validate", AGENT)
    assert all(v["severity"] != "SEVERITY_ERROR" for v in report["violations"])
    assert cli.json("agents", "status", AGENT)["status"]["state"] == "STATE_DRAFT"
    assert cli.json("versions", "show", AGENT, "1")["number"] == 1
    assert cli.json("notifications", "list", "acme")["notifications"] == []

    # Without a file, the draft opens in $EDITOR; what is saved there is written back.
    edited = cli("draft", "edit", AGENT, editor="sed -i s/Ava/Eve/")
    assert edited.exit_code == 0, edited.output
    assert cli.json("draft", "show", AGENT)["config"]["personality"]["name"] == "Eve"
    unchanged = cli("draft", "edit", AGENT, editor="true")
    assert unchanged.exit_code == 0 and "No changes" in unchanged.stdout

    as_yaml = yaml.safe_load(cli.ok("draft", "show", AGENT, "-o", "yaml").stdout)
    assert as_yaml["config"]["voice"]["primary_language"] == "en-US"
    assert "opening_greeting" in cli.ok("draft", "show", AGENT, "-o", "table").stdout

    check_maintenance_notices(cli, token)


async def test_activation_numbers_activate_route_and_drain(cli, token, tmp_path):
    cli.ok("agents", "create", AGENT)
    unmet = cli("activate", AGENT)
    assert unmet.exit_code == 1
    # Every unmet launch item is listed: no live version, no phone number.
    assert "2 launch item(s) unmet" in unmet.stderr
    assert unmet.stderr.count(FULL) >= 2

    cli.ok("draft", "edit", AGENT, "-f", write_config(tmp_path))
    cli.ok("publish", AGENT)
    assigned = cli.ok("numbers", "assign", AGENT, "+14155550123")
    assert "+14155550123" in assigned.stdout
    activated = cli.ok("activate", AGENT)
    assert "ACTIVE" in activated.stdout

    service = token(["service"], "*", "gateway")
    denied = cli("calls", "route", "+14155550123")
    assert denied.exit_code == 1 and "service token" in denied.stderr
    routed = cli("calls", "route", "+14155550123", "--from", "+14155550999", "-o", "json", token=service)
    assert routed.exit_code == 0, routed.output
    call = json.loads(routed.stdout)
    assert call["version"] == f"{FULL}/versions/1"

    drained = cli.ok("deactivate", AGENT)
    assert "INACTIVE" in drained.stdout
    assert "1 call(s) still draining" in drained.stdout
    ended = cli("calls", "end", call["name"], token=service)
    assert ended.exit_code == 0, ended.output
    waited = cli.ok("deactivate", AGENT, "--wait", "--max-wait", "10")
    assert "All calls have finished" in waited.stderr

    released = cli.ok("numbers", "release", AGENT, "+14155550123", "-o", "json")
    assert json.loads(released.stdout)["phone_numbers"] == []


def check_maintenance_notices(cli: Cli, token) -> None:
    """Notices are created by an sre only and show in every tenant's Notification Center."""
    sre = token(["sre"], "*", "oncall")
    denied = cli("notices", "create", "--title", "Upgrade", "--message", "m", "--start", "+1h", "--end", "+2h")
    assert denied.exit_code == 1 and "PERMISSION_DENIED" in denied.stderr
    created = cli(
        "notices", "create", "--title", "Upgrade", "--message", "Calls may drop.",
        "--start", "+1h", "--end", "+2h", "-o", "json", token=sre,
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    notice = json.loads(created.stdout)
    assert notice["name"].startswith("notices/") and notice["title"] == "Upgrade"

    # A notice in its window shows in every tenant's Notification Center, category Maintenance.
    current = cli(
        "notices", "create", "--title", "Now", "--message", "Calls may drop now.",
        "--start", "now", "--end", "+1h", "-o", "json", token=sre,
    )  # fmt: skip
    assert current.exit_code == 0, current.output
    listed = cli.json("notifications", "list", "acme", "--category", "maintenance", "--unread")["notifications"]
    assert [n["title"] for n in listed] == ["Now"]
    assert cli.json("notifications", "list", "acme", "--category", "system")["notifications"] == []
    table = cli.ok("notifications", "list", "acme").stdout
    assert "MAINTENANCE" in table and "Calls may drop now." in table
    read = cli.ok("notifications", "read", listed[0]["name"])
    assert "Marked read" in read.stdout
    assert cli.json("notifications", "list", "acme", "--unread")["notifications"] == []
