"""Every command answers --help with an example, and usage mistakes never need a server."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from speako.cli import main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        out.append(path)
        if isinstance(command, click.Group):
            out += _commands(command, path)
    return out


COMMANDS = _commands(main)


def test_the_whole_workflow_is_there():
    expected = {
        ("agents", "create"), ("agents", "list"), ("agents", "status"),
        ("draft", "show"), ("draft", "edit"), ("draft", "set"), ("draft", "validate"),
        ("publish",), ("jobs", "list"), ("jobs", "show"), ("jobs", "watch"),
        ("versions", "history"), ("versions", "show"), ("versions", "diff"),
        ("versions", "restore"), ("versions", "rollback"),
        ("numbers", "assign"), ("numbers", "release"), ("activate",), ("deactivate",), ("calls", "route"),
        ("notifications", "list"), ("notifications", "read"), ("notices", "create"),
        ("token",), ("serve",), ("health",),
    }  # fmt: skip
    assert expected <= set(COMMANDS)


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "speako")
def test_help_has_an_example(path):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


READ_COMMANDS = [
    ("agents", "list"), ("agents", "status"), ("draft", "show"), ("draft", "validate"),
    ("jobs", "list"), ("jobs", "show"), ("jobs", "watch"), ("versions", "history"), ("versions", "show"),
    ("versions", "diff"), ("notifications", "list"),
]  # fmt: skip


@pytest.mark.parametrize("path", READ_COMMANDS, ids=" ".join)
def test_read_commands_offer_json_output(path):
    assert "json" in CliRunner().invoke(main, [*path, "--help"]).output


def test_bad_reference_is_one_line_and_exit_2_without_a_server():
    result = CliRunner().invoke(
        main, ["--config-addr", "127.0.0.1:1", "agents", "status", "a/b/c"], env={"SPEAKO_TOKEN": None}
    )
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: 'a/b/c' is not an agent")


def test_unreachable_service_is_one_line_with_a_hint():
    result = CliRunner().invoke(main, ["--config-addr", "127.0.0.1:1", "--timeout", "2", "agents", "list", "acme"])
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.startswith("error: UNAVAILABLE: cannot reach the config service at 127.0.0.1:1")
    assert "SPEAKO_CONFIG_ADDR" in line
