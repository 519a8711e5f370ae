"""bench/__main__.py's bounded runner of the per-service scripts: output, exit status, overrun."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

from bench.__main__ import run_bounded

# A script that starts a server of its own (as activation_routecall starts the echo server),
# prints its pid, then works for longer than it is given.
SPAWNS_A_SERVER = """
import subprocess, sys, time
server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[2], "w").write(str(server.pid))
print("figures", flush=True)
time.sleep(float(sys.argv[1]))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


async def test_a_script_that_finishes_gives_its_output_and_exit_status() -> None:
    assert await run_bounded([sys.executable, "-c", "print('figures'); raise SystemExit(3)"], 10) == (
        "figures\n(exit status 3)"
    )


@pytest.mark.parametrize(
    ("works_s", "timeout_s", "output"),
    [(0.0, 30.0, "figures"), (60.0, 2.0, "(stopped after 2s)")],
    ids=["finishes", "overruns"],
)
async def test_the_servers_a_script_started_do_not_outlive_it(
    tmp_path, works_s: float, timeout_s: float, output: str
) -> None:
    script = tmp_path / "script.py"
    script.write_text(SPAWNS_A_SERVER)
    started = time.monotonic()
    text = await run_bounded([sys.executable, str(script), str(works_s), str(tmp_path / "pid")], timeout_s)
    assert text == output
    # The server holds the script's output pipe open for 60 s: the runner waited for the script only.
    assert time.monotonic() - started < 15
    pid = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:  # noqa: ASYNC110 (polls another process)
        await asyncio.sleep(0.05)
    assert not _alive(pid)
