"""The C++ WatchPublishJobs watcher (bench/cpp/watch.cc): build it, and its command line.

The fan-out's 1,000 watchers share the machine's 2 cores with the server they measure. A
grpc.aio watcher spends about as much CPU per update as the notifier spends sending it, so Python
watchers take a large share of the cores from the figure they report (as a Python client would
for RouteCall's maximum; see bench/h2load.py). The C++ watcher speaks the same protocol as
``python -m bench.worker watch``, so either drives ``bench.platform_bench.watch_streams``.

Build needs g++ and gRPC's C++ library: ``apt-get install g++ libgrpc++-dev`` (``make bench``
does it when they are missing). The binary is built into .run/ once per source and library version
(``make clean`` removes it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).parent / "cpp" / "watch.cc"
BUILD_DIR = Path(__file__).resolve().parent.parent / ".run"


def available() -> bool:
    """Whether the watcher can be built here (g++ and gRPC's C++ development files)."""
    if shutil.which("g++") is None or shutil.which("pkg-config") is None:
        return False
    return subprocess.run(["pkg-config", "--exists", "grpc++"], check=False).returncode == 0


def _pkg_config(*args: str) -> str:
    return subprocess.run(["pkg-config", *args, "grpc++"], check=True, capture_output=True, text=True).stdout


def binary() -> Path:
    """The built watcher, compiled first if its source or the gRPC library changed since."""
    # The library's version is in the key: a binary linked against an older soname would not load.
    key = hashlib.sha256(SOURCE.read_bytes() + _pkg_config("--modversion").encode()).hexdigest()[:12]
    target = BUILD_DIR / f"bench-watch-{key}"
    if not target.exists():
        BUILD_DIR.mkdir(exist_ok=True)
        # Built under a name of its own, then renamed: concurrent builds never run (or replace) a
        # half-linked file, and the last complete one wins.
        fd, partial = tempfile.mkstemp(prefix=f"{target.name}.", suffix=".partial", dir=BUILD_DIR)
        os.close(fd)
        try:
            command = ["g++", "-O2", "-std=c++17", "-Wall", "-Wextra", str(SOURCE)]
            built = subprocess.run(
                [*command, *_pkg_config("--cflags", "--libs").split(), "-o", partial], capture_output=True, text=True
            )
            if built.returncode != 0:
                raise RuntimeError(f"building {SOURCE} failed:\n{built.stderr}")
            os.chmod(partial, 0o755)
            os.replace(partial, target)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return target
