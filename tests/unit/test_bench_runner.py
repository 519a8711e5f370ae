"""bench/__main__.py's bounded runner of the per-service scripts: output, exit status, overrun."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import pytest

from bench.__main__ import run_bounded

# A script that starts a server of its own (as activation_routecall starts the echo server),
# writes the server's pid to argv[2], prints its figures, then works for argv[1] seconds.
# With argv[3] == "escapes" the server leaves the script's process group (as a daemon would).
SPAWNS_A_SERVER = """
import subprocess, sys, time
server = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=sys.argv[3] == "escapes"
)
open(sys.argv[2], "w").write(str(server.pid))
print("figures", flush=True)
time.sleep(float(sys.argv[1]))
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie (exited, not yet reaped by init) counts as gone


async def _run(tmp_path, works_s: float, timeout_s: float, server: str = "stays") -> tuple[str, float, int]:
    script = tmp_path / "script.py"
    script.write_text(SPAWNS_A_SERVER)
    started = time.monotonic()
    text = await run_bounded([sys.executable, str(script), str(works_s), str(tmp_path / "pid"), server], timeout_s)
    return text, time.monotonic() - started, int((tmp_path / "pid").read_text())


async def test_a_script_that_finishes_gives_its_output_and_exit_status() -> None:
    assert await run_bounded([sys.executable, "-c", "print('figures'); raise SystemExit(3)"], 10) == (
        "figures\n(exit status 3)"
    )


@pytest.mark.parametrize(
    ("works_s", "timeout_s", "output"),
    [(0.0, 30.0, "figures"), (60.0, 5.0, "(stopped after 5s)")],
    ids=["finishes", "overruns"],
)
async def test_the_servers_a_script_started_do_not_outlive_it(
    tmp_path, works_s: float, timeout_s: float, output: str
) -> None:
    text, took_s, pid = await _run(tmp_path, works_s, timeout_s)
    assert text == output
    # The server holds the script's output pipe open for 60 s: the runner waited for the script only.
    assert took_s < timeout_s + 10 if works_s else took_s < 15
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:  # noqa: ASYNC110 (polls another process)
        await asyncio.sleep(0.05)
    assert not _alive(pid)


async def test_a_server_that_left_the_group_does_not_hold_the_runner(tmp_path) -> None:
    text, took_s, pid = await _run(tmp_path, 0.0, 30.0, server="escapes")
    try:
        assert text == "figures"
        assert took_s < 15  # not the server's 60 s
    finally:
        os.kill(pid, signal.SIGKILL)
