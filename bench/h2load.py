"""Closed-loop unary gRPC load from h2load, nghttp2's HTTP/2 load generator (written in C).

The servers share the machine's 2 cores with whatever drives them. A grpc.aio client spends
about as much CPU per call as the server it measures, so a Python load generator caps the figure
it reports; h2load spends a few microseconds per call and leaves the cores to the server. Its
requests are ordinary gRPC unary calls: a POST of one length-prefixed message with
``content-type: application/grpc`` and ``te: trailers``.

h2load counts HTTP statuses; a gRPC error still answers HTTP 200 (the status is in the trailers).
Callers pass ``confirmed``, a count the server keeps of its successful answers (RouteCall: the
calls pinned in PostgreSQL), read before and after the run: answers it does not account for
are counted as errors, not as throughput.

Install: ``apt-get install nghttp2-client`` (``make bench`` does it when h2load is missing).
"""

from __future__ import annotations

import asyncio
import re
import resource
import shutil
import struct
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import Latency


def available() -> bool:
    """Whether h2load is on PATH."""
    return shutil.which("h2load") is not None


@dataclass(frozen=True)
class H2Run:
    """One closed-loop run: successful answers per second, errors, latency of each answer."""

    rate: float
    answered: int  # successful answers
    errors: int  # failed at the HTTP level, or answered without the server confirming a success
    latency: Latency
    cpu_s: float  # h2load's own CPU time
    # With ``confirmed``: calls in flight at the stop may have succeeded on the server unanswered,
    # so as many error answers could hide among the confirmed ones (a bound, usually ~0.5%).
    unverifiable: int = 0

    def __str__(self) -> str:
        hidden = f", at most {self.unverifiable} unverifiable" if self.unverifiable else ""
        return f"{self.rate:,.0f}/s ({self.errors} errors{hidden}), {self.latency}"


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed)."""
    return b"\x00" + struct.pack(">I", len(message)) + message


_FINISHED = re.compile(r"finished in ([\d.]+)s")
_REQUESTS = re.compile(r"requests: \d+ total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed")


@dataclass(frozen=True)
class Summary:
    """What one h2load run printed and logged."""

    seconds: float
    succeeded: int  # HTTP 2xx
    failed: int  # h2load's "errored" requests are among these
    in_flight: int  # started but not done when the run stopped
    latencies_s: list[float]  # of each 2xx answer


def parse(output: str, log: str) -> Summary:
    """h2load's printed summary and its --log-file (start us, HTTP status, us until the response ended)."""
    finished, requests = _FINISHED.search(output), _REQUESTS.search(output)
    if finished is None or requests is None:
        raise ValueError(f"not an h2load summary:\n{output}")
    rows = [line.split("\t") for line in log.splitlines() if line.strip()]
    return Summary(
        seconds=float(finished.group(1)),
        succeeded=int(requests.group(3)),
        failed=int(requests.group(4)),
        in_flight=int(requests.group(1)) - int(requests.group(2)),
        latencies_s=[int(row[2]) / 1e6 for row in rows if row[1].startswith("2")],
    )


async def closed_loop(
    addr: str,
    method: str,
    message: bytes,
    *,
    metadata: Sequence[tuple[str, str]] = (),
    duration_s: float = 5.0,
    connections: int = 2,
    streams_per_connection: int = 32,
    confirmed: Callable[[], Awaitable[int]] | None = None,
) -> H2Run:
    """Back-to-back calls of ``method`` on ``connections`` x ``streams_per_connection`` streams.

    Warm the server up first: every request of the run is counted.
    """
    confirmed_before = await confirmed() if confirmed else 0
    with tempfile.TemporaryDirectory(prefix="speako-h2load-") as tmp:
        body, log = Path(tmp, "body"), Path(tmp, "log.tsv")
        body.write_bytes(grpc_frame(message))
        cpu_before = _children_cpu_s()
        headers = [("content-type", "application/grpc"), ("te", "trailers"), *metadata]
        proc = await asyncio.create_subprocess_exec(
            "h2load",
            f"--clients={connections}",
            f"--max-concurrent-streams={streams_per_connection}",
            f"--duration={duration_s:g}",
            f"--data={body}",
            *[f"--header={key}: {value}" for key, value in headers],
            f"--log-file={log}",
            f"http://{addr}{method}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output = (await asyncio.wait_for(proc.communicate(), duration_s + 60))[0].decode(errors="replace")
        cpu_s = _children_cpu_s() - cpu_before
        if proc.returncode:
            raise RuntimeError(f"h2load failed (exit {proc.returncode}):\n{output}")
        summary = parse(output, log.read_text())
    unconfirmed = 0
    if confirmed is not None:
        await asyncio.sleep(0.5)  # let the server finish what was in flight at the stop
        unconfirmed = max(0, summary.succeeded - (await confirmed() - confirmed_before))
    answered = summary.succeeded - unconfirmed
    return H2Run(
        rate=answered / summary.seconds,
        answered=answered,
        errors=summary.failed + unconfirmed,
        latency=Latency.of(summary.latencies_s),
        cpu_s=cpu_s,
        unverifiable=summary.in_flight if confirmed is not None else 0,
    )


def _children_cpu_s() -> float:
    # RUSAGE_CHILDREN counts children once reaped: during the run, that is h2load alone.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
