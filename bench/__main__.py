"""Run the whole benchmark suite, print the figures and write docs/PERFORMANCE.md.

Usage: ``python -m bench [--quick] [--no-service-benches] [--out docs/PERFORMANCE.md]``.
Every part is bounded in time; the whole run takes 5-7 minutes on a 2-core machine.
Each run also keeps its figures in ``.run/bench-results.pickle``: ``python -m bench --render``
writes the report again from them (after editing the findings in bench/report.py) without
measuring anything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pickle
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import uvloop

from bench import cpp_watch, h2load, report
from bench import floors as floors_mod
from bench import platform_bench as pb
from bench.common import machine, percentile, postgres_version, scratch
from bench.tracing_sink import otlp_sink, sampled_and_exported_to

# The second sustained run's offered rate: below capacity on the Intel machines of this kind (110-137/s).
STEADY_RATE = 100.0

ROOT = Path(__file__).resolve().parent.parent
# The last run's figures (Results), for --render; .run/ is not tracked.
RESULTS = ROOT / ".run" / "bench-results.pickle"
# Each script's bound: activation_routecall takes 60-75 s on its own on the slower machines of this kind.
SERVICE_BENCH_TIMEOUT_S = 150.0
SERVICE_BENCHES = ("config_publish", "publisher_jobs", "notifier_fanout", "activation_routecall")


async def run_bounded(argv: Sequence[str], timeout_s: float) -> str:
    """Run a program in a process group of its own; its output, or a note once it overran ``timeout_s``.

    Once it exits or overruns, the whole group is killed: a bench script's own servers (the echo
    server, the services) would otherwise outlive it and take CPU from everything measured after it.
    The output goes to a file, not a pipe, which a leftover child could hold open for the runner.
    """
    with tempfile.TemporaryFile() as output:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, stdout=output, stderr=asyncio.subprocess.STDOUT, start_new_session=True
        )
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            return f"(stopped after {timeout_s:.0f}s)"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        output.seek(0)
        text = output.read().decode(errors="replace").strip()
    if proc.returncode:
        text += f"\n(exit status {proc.returncode})"
    return text


async def run_service_benches(timeout_s: float) -> dict[str, str]:
    """Run the per-service scripts that exist (bench/<svc>_*.py); their output, bounded in time."""
    outputs: dict[str, str] = {}
    for name in SERVICE_BENCHES:
        if not (ROOT / "bench" / f"{name}.py").exists():
            continue
        print(f"\n== bench/{name}.py")
        text = await run_bounded([sys.executable, "-m", f"bench.{name}"], timeout_s)
        print(text)
        outputs[name] = text
    return outputs


def _print_sustained(s: pb.Sustained) -> None:
    print(
        f"  sustained @ {s.offered_rate:.0f}/s offered over 100 agents: {s.completion_rate:.0f}/s completed, "
        f"{s.latency}, outcomes {s.outcomes}, unfinished {s.unfinished}, send errors {s.send_errors}"
    )


async def main(args: argparse.Namespace) -> None:
    if not h2load.available():
        raise SystemExit("h2load not found: apt-get install nghttp2-client (make bench installs it)")
    if not cpp_watch.available():
        raise SystemExit("the fan-out's C++ watcher needs g++ and libgrpc++-dev (make bench installs them)")
    cpp_watch.binary()  # built now, not while the platform is measured
    started = time.monotonic()
    q = args.quick
    facts = machine()
    facts["postgresql"] = await postgres_version()
    print("Machine:", ", ".join(f"{k} {v}" for k, v in facts.items()))
    r = report.Results(machine=facts)

    print("\n== Floors")
    async with scratch("floors") as s:
        r.floors = await floors_mod.measure(s)
        async with floors_mod.echo_server() as addr:
            r.echo_multi = await pb.echo_best(addr)
        print(f"  grpc.aio echo throughput (h2load, 2 connections x 32 streams): {r.echo_multi}")

    print("\n== Platform (default telemetry: spans created, no exporter)")
    async with scratch("main") as s, pb.running(s, "main") as (plat, client):
        rss = pb.RssSampler(plat)
        await asyncio.sleep(2.0)
        rss.sample()
        rss.start()
        cpu = pb.CpuMeter(plat)
        cpu.start()
        n_seq = 50 if q else 200
        r.publish, r.breakdown, r.publish_failed = await pb.publish_latency(client, n_seq)
        # Per publish (an UpdateDraft and the publish itself; warm-up publishes included).
        r.cpu_per_publish = {k: v * 1000 / (n_seq + 10) for k, v in cpu.stop().items()}
        print(f"  CPU ms per publish (with its UpdateDraft): {report.fmt_cpu(r.cpu_per_publish)}")
        print(f"  publish-to-live, one at a time: {r.publish}; {pb.summarize_breakdown(r.breakdown)}")
        rss.phase = "load"
        r.big, _, r.big_failed = await pb.publish_latency(
            client, 3 if q else 8, knowledge_bytes=5 << 20, agent_id="big-knowledge"
        )
        print(f"  5 MB knowledge base publish-to-live: {r.big}")
        r.routecall = await pb.route_calls(client, plat.addr("activation"), s.database_url)
        print(f"  RouteCall sequential: {r.routecall.sequential}")
        print(f"  RouteCall max (h2load, 2 connections x 32 streams): {r.routecall.best}")
        print(f"  RouteCall at 500/s: {r.routecall.at_500}")
        r.fanout = await pb.fanout(client, plat, 1000, 5 if q else 15, watcher="cpp")
        print(
            f"  fan-out to {r.fanout.watchers} watchers: {r.fanout.latency}; "
            f"{r.fanout.deliveries}/{r.fanout.expected} deliveries, {r.fanout.stream_errors} stream errors, "
            f"{r.fanout.uneven_streams} streams not served every change once; watchers' CPU "
            f"{r.fanout.watcher_cpu_us:.0f} us per update"
        )
        cpu.start()
        r.sustained = await pb.sustained(client, 100, 300.0, 4.0 if q else 12.0)
        # Per publish that finished: the CPU of any left unfinished after the wait is cut off too.
        finished = r.sustained.sent - r.sustained.unfinished
        r.sustained_cpu = {k: v * 1000 / max(1, finished) for k, v in cpu.stop().items()}
        _print_sustained(r.sustained)
        print(f"  CPU ms per publish under that load: {report.fmt_cpu(r.sustained_cpu)}")
        # Meant to be below capacity: the p99 when the platform keeps up (not a target of its own);
        # the report says whether this machine did.
        r.steady = await pb.sustained(client, 100, STEADY_RATE, 4.0 if q else 10.0, prefix="steady")
        _print_sustained(r.steady)
        await rss.stop()
        r.rss = rss.peaks
        r.rss_hwm = rss.lifetime_peaks()
        print(
            f"  RSS MiB idle {report.fmt_rss(r.rss.get('idle', {}))}; "
            f"under load {report.fmt_rss(r.rss.get('load', {}))}"
        )

    print("\n== Fan-out floor (bare grpc.aio server, the same watcher program; platform stopped)")
    # The changes follow each other as the platform's did in its one-at-a-time run (p50 legs).
    legs = (r.breakdown.to_processing, r.breakdown.processing_to_published)
    gaps = (percentile(legs[0], 50), percentile(legs[1], 50)) if all(legs) else (5.0, 12.0)
    try:
        r.fanout_floor = await pb.fanout_floor(r.fanout.watchers, r.fanout.publishes, gaps, watcher="cpp")
        print(
            f"  {r.fanout_floor.watchers} watchers, changes {gaps[0]:.1f} and {gaps[1]:.1f} ms apart: "
            f"{r.fanout_floor.latency}; server CPU {r.fanout_floor.server_cpu_us:.0f} us per delivery "
            f"(notifier {r.fanout.server_cpu_us:.0f} us), watchers {r.fanout_floor.watcher_cpu_us:.0f} us per "
            f"update; streams not served every change once: {r.fanout_floor.uneven_streams}"
        )
    except Exception as exc:  # the report is still written, with the fan-out against its unary floors
        print(f"  the fan-out floor failed: {exc!r}")

    print("\n== Tracing overhead")
    n = 30 if q else 100
    async with scratch("trace-off") as s, pb.running(s, "tracing-off", OTEL_SDK_DISABLED="true") as (plat, client):
        lat, _, _ = await pb.publish_latency(client, n)
        rc = await pb.route_calls(client, plat.addr("activation"), s.database_url)
        r.tracing["off"] = (lat, rc)
        print(f"  off (OTEL_SDK_DISABLED): publish {lat}; RouteCall max {rc.best.rate:,.0f}/s, seq {rc.sequential}")
    async with otlp_sink() as (endpoint, spans):
        async with (
            scratch("trace-on") as s,
            pb.running(s, "tracing-on", **sampled_and_exported_to(endpoint)) as (plat, client),
        ):
            lat, _, _ = await pb.publish_latency(client, n)
            rc = await pb.route_calls(client, plat.addr("activation"), s.database_url)
            r.tracing["on"] = (lat, rc)
            print(
                f"  on (always_on, OTLP to a local sink): publish {lat}; RouteCall max {rc.best.rate:,.0f}/s, "
                f"seq {rc.sequential}"
            )
        r.spans_exported = await spans()
        print(f"  spans received by the sink: {r.spans_exported}")

    if not args.no_service_benches:
        r.service_benches = await run_service_benches(SERVICE_BENCH_TIMEOUT_S)

    r.elapsed_s = time.monotonic() - started
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(pickle.dumps(r))
    write_report(r, Path(args.out))


def write_report(r: report.Results, out: Path) -> None:
    """Render the figures to ``out`` and print the headline."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.render(r))
    print(f"\nWrote {out} ({r.elapsed_s:.0f}s)")
    print(report.headline(r))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument("--no-service-benches", action="store_true", help="skip bench/<service>_*.py")
    parser.add_argument("--out", default=str(ROOT / "docs" / "PERFORMANCE.md"))
    parser.add_argument("--render", action="store_true", help=f"only write the report again from {RESULTS}")
    args = parser.parse_args()
    if args.render:
        write_report(pickle.loads(RESULTS.read_bytes()), Path(args.out))
    else:
        # The load generators run on uvloop like the services: less of the two cores goes to the client.
        uvloop.run(main(args))
