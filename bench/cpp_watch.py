"""The C++ WatchPublishJobs watcher (bench/cpp/watch.cc): build it, and its command line.

The fan-out's 1,000 watchers share the machine's 2 cores with the server they measure. A
grpc.aio watcher spends about as much CPU per update as the notifier spends sending it, so Python
watchers take a large share of the cores from the figure they report (as a Python client would
for RouteCall's maximum; see bench/h2load.py). The C++ watcher speaks the same protocol as
``python -m bench.worker watch``, so either drives ``bench.platform_bench.watch_streams``.

Build needs g++ and gRPC's C++ library: ``apt-get install g++ libgrpc++-dev`` (``make bench``
does it when they are missing). The binary is built once per source change, into .run/.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).parent / "cpp" / "watch.cc"
BUILD_DIR = Path(__file__).resolve().parent.parent / ".run"


def available() -> bool:
    """Whether the watcher can be built here (g++ and gRPC's C++ development files)."""
    if shutil.which("g++") is None or shutil.which("pkg-config") is None:
        return False
    return subprocess.run(["pkg-config", "--exists", "grpc++"], check=False).returncode == 0


def binary() -> Path:
    """The built watcher, compiled first if its source changed since the last build."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    target = BUILD_DIR / f"bench-watch-{digest}"
    if not target.exists():
        BUILD_DIR.mkdir(exist_ok=True)
        flags = subprocess.run(
            ["pkg-config", "--cflags", "--libs", "grpc++"], check=True, capture_output=True, text=True
        ).stdout.split()
        partial = target.with_suffix(".partial")
        subprocess.run(
            ["g++", "-O2", "-std=c++17", "-Wall", "-Wextra", str(SOURCE), *flags, "-o", str(partial)], check=True
        )
        partial.rename(target)  # a build cut short never passes for a finished one
    return target
