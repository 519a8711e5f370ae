"""Turns one run's figures into docs/PERFORMANCE.md (and a printed headline)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.common import Latency
from bench.floors import Floors
from bench.load import Throughput

if TYPE_CHECKING:
    from bench.platform_bench import Fanout

# Work on each measured path, from the code (see "Paths" in the report).
PUBLISH_PATH = {"grpc": 4, "pg": 6, "amqp": 2}
FANOUT_PATH = {"grpc": 1, "pg": 2, "amqp": 1}
ROUTECALL_PATH = {"grpc": 1, "pg": 1, "amqp": 0}

TARGETS = {
    "publish_p50": 15.0,
    "publish_p99": 50.0,
    "sustained_rate": 300.0,
    "sustained_p99": 1000.0,
    "routecall_rate": 2000.0,
    "routecall_p99_at_500": 10.0,
    "fanout_p99": 100.0,
    "big_publish": 500.0,
    "rss": 150.0,
}


@dataclass
class Results:
    """Everything one run measured."""

    machine: dict[str, str]
    floors: Floors | None = None
    echo_multi: Throughput | None = None
    publish: Latency | None = None
    breakdown: Any = None
    publish_failed: int = 0
    big: Latency | None = None
    big_failed: int = 0
    routecall: Any = None
    fanout: Fanout | None = None
    fanout_floor: Fanout | None = None  # the same watchers on a bare grpc.aio server (bench/fanout_floor.py)
    sustained: Any = None
    steady: Any = None
    rss: dict[str, dict[str, float]] = field(default_factory=dict)
    # CPU ms per publish by process group (bench.platform_bench.CpuMeter): one at a time, and under
    # the 300/s sustained load.
    cpu_per_publish: dict[str, float] = field(default_factory=dict)
    sustained_cpu: dict[str, float] = field(default_factory=dict)
    rss_hwm: dict[str, float] = field(default_factory=dict)
    tracing: dict[str, tuple[Latency, Any]] = field(default_factory=dict)
    spans_exported: int = 0
    service_benches: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0


def floor_sum(f: Floors, path: dict[str, int], pct: str = "p50") -> float:
    """Sum in ms of the floors a path pays, at the given percentile."""
    return (
        path["grpc"] * getattr(f.grpc_unary, pct)
        + path["pg"] * getattr(f.pg_commit, pct)
        + path["amqp"] * getattr(f.amqp_round_trip, pct)
    )


def fmt_rss(values: dict[str, float]) -> str:
    """config 61, publisher 63, ..."""
    return ", ".join(f"{k} {v:.0f}" for k, v in values.items())


def fmt_cpu(values: dict[str, float]) -> str:
    """config 6.1, publisher 5.9, ..., postgresql 4.0, ...; all 27.3"""
    return ", ".join(f"{k} {v:.1f}" for k, v in values.items()) + f"; all {sum(values.values()):.1f}"


def _capacity(s: Any) -> str:
    """Whether a sustained run's offered rate was below what the machine completed."""
    return "below capacity" if s.completion_rate >= 0.95 * s.offered_rate else "above capacity"


def _ok(good: bool, floor_misses: bool = False, clean: bool = True) -> str:
    """The verdict: met when the figure is within its target and the run was ``clean`` (no lost or
    repeated deliveries, no errors). A miss of a clean run says so when the figure's floor measured
    in the same run (a bare server, or the sum of the p50 floors the path pays) is already past the
    target. A sum of p99 floors is not the floor of a p99, and one run's p99 at 500/s is too noisy,
    so those never count; the fan-out's floor is a p99 over the same 45,000 deliveries as the figure's."""
    if good and clean:
        return "met"
    return "**missed** (the floor alone misses it here)" if floor_misses and clean else "**missed**"


def _ratio(value: float, floor: float) -> str:
    return f"{value / floor:.1f}x" if floor > 0 else "-"


def rows(r: Results) -> list[tuple[str, str, str, str, str, str]]:
    """(figure, target, measured, floors paid, ratio, verdict) for each platform figure."""
    assert r.floors is not None
    f = r.floors
    out = []
    pub50, pub99 = floor_sum(f, PUBLISH_PATH), floor_sum(f, PUBLISH_PATH, "p99")
    if r.publish is not None:
        out.append(
            (
                "Publish-to-live, one at a time, p50",
                "<= 15 ms",
                f"{r.publish.p50:.1f} ms",
                f"{pub50:.1f} ms",
                _ratio(r.publish.p50, pub50),
                _ok(r.publish.p50 <= TARGETS["publish_p50"], pub50 > TARGETS["publish_p50"]),
            )
        )
        out.append(
            (
                "Publish-to-live, one at a time, p99",
                "<= 50 ms",
                f"{r.publish.p99:.1f} ms",
                f"{pub99:.1f} ms (p99 floors)",
                _ratio(r.publish.p99, pub99),
                _ok(r.publish.p99 <= TARGETS["publish_p99"]),
            )
        )
    if r.sustained is not None:
        s = r.sustained
        out.append(
            (
                "Sustained publishing over 100 agents (300/s offered): completed",
                ">= 300/s",
                f"{s.completion_rate:.0f}/s",
                "-",
                "-",
                _ok(s.completion_rate >= TARGETS["sustained_rate"]),
            )
        )
        out.append(
            (
                "Sustained publishing: p99 publish-to-live",
                "<= 1 s",
                f"{s.latency.p99:.0f} ms",
                f"{pub50:.1f} ms",
                _ratio(s.latency.p99, pub50),
                _ok(s.latency.p99 <= TARGETS["sustained_p99"]),
            )
        )
    if r.steady is not None:
        st = r.steady
        out.append(
            (
                f"Sustained publishing at {st.offered_rate:.0f}/s offered ({_capacity(st)}): p99 publish-to-live",
                "-",
                f"{st.latency.p99:.0f} ms ({st.completion_rate:.0f}/s completed)",
                f"{pub50:.1f} ms",
                _ratio(st.latency.p99, pub50),
                "-",
            )
        )
    if r.routecall is not None and r.echo_multi is not None:
        rc = r.routecall
        rc_floor = floor_sum(f, ROUTECALL_PATH)
        out.append(
            (
                "RouteCall maximum throughput",
                ">= 2,000/s",
                f"{rc.best.rate:,.0f}/s",
                f"bare echo {r.echo_multi.rate:,.0f}/s",
                f"{rc.best.rate / r.echo_multi.rate:.2f} of echo",
                _ok(
                    rc.best.rate >= TARGETS["routecall_rate"],
                    r.echo_multi.rate < TARGETS["routecall_rate"],
                    clean=rc.best.errors == 0,
                ),
            )
        )
        out.append(
            (
                "RouteCall p99 at 500/s",
                "<= 10 ms",
                f"{rc.at_500.latency.p99:.1f} ms",
                f"echo at 500/s p99 {f.echo_at_500.latency.p99:.1f} ms",
                _ratio(rc.at_500.latency.p99, f.echo_at_500.latency.p99),
                _ok(rc.at_500.latency.p99 <= TARGETS["routecall_p99_at_500"]),
            )
        )
        out.append(
            (
                "RouteCall one at a time, p50",
                "-",
                f"{rc.sequential.p50:.2f} ms",
                f"{rc_floor:.2f} ms",
                _ratio(rc.sequential.p50, rc_floor),
                "-",
            )
        )
    if r.fanout is not None:
        fo = r.fanout
        # Measured: the bare server's p99 to the same watchers, plus the way of a change to the
        # notifier (the PUBLISHED commit, a broker hop, the notifier's commit) at p50. Else the
        # unary floors of the whole path.
        floor_misses = False
        if r.fanout_floor is not None:
            bare, hop = r.fanout_floor.latency.p99, floor_sum(f, {**FANOUT_PATH, "grpc": 0})
            fan = bare + hop
            paid = f"{fan:.1f} ms (bare fan-out p99 {bare:.1f} + commits and broker hop {hop:.1f})"
            floor_misses = bare > TARGETS["fanout_p99"]
        else:
            fan = floor_sum(f, FANOUT_PATH)
            paid = f"{fan:.1f} ms"
        out.append(
            (
                f"Fan-out to {fo.watchers} WatchPublishJobs watchers, p99 change-to-delivery",
                "<= 100 ms",
                f"{fo.latency.p99:.1f} ms (p50 {fo.latency.p50:.1f})",
                paid,
                _ratio(fo.latency.p99, fan),
                _ok(
                    fo.latency.p99 <= TARGETS["fanout_p99"],
                    floor_misses,
                    clean=fo.deliveries == fo.expected and not fo.uneven_streams,
                ),
            )
        )
    if r.big is not None:
        out.append(
            (
                "5 MB knowledge base, publish-to-live (p50 / max)",
                "<= 500 ms",
                f"{r.big.p50:.0f} / {r.big.max:.0f} ms",
                f"{pub50:.1f} ms",
                _ratio(r.big.p50, pub50),
                _ok(r.big.max <= TARGETS["big_publish"]),
            )
        )
    if r.rss:
        peak = max([*r.rss_hwm.values(), 0.0])
        out.append(
            ("Peak RSS of any service process", "<= 150 MB", f"{peak:.0f} MiB", "-", "-", _ok(peak <= TARGETS["rss"]))
        )
    return out


# The fan-out's watcher programs (bench.platform_bench.watch_streams).
_WATCHERS = {
    "cpp": "processes of the C++ watcher, `bench/cpp/watch.cc` (a grpc.aio watcher spends about what the server "
    "spends per update, on the same 2 cores)",
    "python": "`bench.worker` processes (grpc.aio)",
}


def _latency_row(name: str, lat: Latency) -> str:
    return f"| {name} | {lat.p50:.2f} | {lat.p90:.2f} | {lat.p99:.2f} | {lat.max:.2f} | {lat.n} |"


def render(r: Results) -> str:
    """The whole docs/PERFORMANCE.md."""
    assert r.floors is not None
    f = r.floors
    m = r.machine
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (`python -m bench`); every figure below comes from one run on the machine",
        "described here. Each service runs as its own process (`tests/harness.Platform`) on a scratch",
        "PostgreSQL database and RabbitMQ vhost that the run creates and drops; every component is durable",
        "(PostgreSQL `fsync=on`, `synchronous_commit=on`; persistent messages on quorum queues with confirms).",
        "The load generators run on the same machine, so they compete with the services for the same cores;",
        "like the services (`SPEAKO_EVENT_LOOP`), they and the floors' bare servers run on uvloop.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in m.items()),
        f"| run time | {r.elapsed_s:.0f} s |",
        "",
        "## Floors (measured in the same run)",
        "",
        "| floor | p50 ms | p90 ms | p99 ms | max ms | n |",
        "|---|---|---|---|---|---|",
        _latency_row("PostgreSQL commit (one INSERT, autocommit)", f.pg_commit),
        _latency_row("RabbitMQ publish-confirm, persistent, quorum queue", f.amqp_confirm),
        _latency_row("RabbitMQ publish-to-consume round trip, quorum queue", f.amqp_round_trip),
        _latency_row("grpc.aio unary round trip (bare echo server, own process)", f.grpc_unary),
        *(
            [
                _latency_row(
                    f"grpc.aio fan-out to {r.fanout_floor.watchers} streams, change -> delivery (bare server, "
                    "the fan-out's watcher processes; see Fan-out)",
                    r.fanout_floor.latency,
                )
            ]
            if r.fanout_floor is not None
            else []
        ),
        "",
        f"Bare grpc.aio echo server throughput: {f.echo_max.rate:,.0f}/s from a grpc.aio client process "
        f"(32 callers); {r.echo_multi.rate if r.echo_multi else 0:,.0f}/s from h2load with 2 connections x 32 "
        "streams (the same client set-up as RouteCall's maximum; bench/h2load.py). "
        f"At 500/s offered: p99 {f.echo_at_500.latency.p99:.2f} ms.",
        "",
        "## Platform figures vs targets",
        "",
        "Floors paid = the sum of the p50 floors along the figure's path (see Paths below); ratio = measured / floors.",
        "A miss marked *the floor alone misses it here* is one whose floor measured in this run (the bare echo",
        "server's maximum for RouteCall's, the bare fan-out server's p99 for the fan-out, the sum of p50 floors",
        "for publish-to-live p50) is already past the target on this machine.",
        "",
        "| figure | target | measured | floors paid | ratio | verdict |",
        "|---|---|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in rows(r)),
        "",
    ]
    if r.publish is not None and r.breakdown is not None:
        from bench.common import percentile

        b = r.breakdown
        lines += [
            "### Where a publish spends its time (p50 / p99 of each leg, from the job's own timestamps)",
            "",
            "| leg | p50 ms | p99 ms |",
            "|---|---|---|",
            f"| PublishDraft commit -> PROCESSING committed (outbox relay, broker hop, publisher intake, claim) | "
            f"{percentile(b.to_processing, 50):.1f} | {percentile(b.to_processing, 99):.1f} |",
            f"| PROCESSING -> PUBLISHED (GetVersion, packaging, DeployBundle, commits) | "
            f"{percentile(b.processing_to_published, 50):.1f} | {percentile(b.processing_to_published, 99):.1f} |",
            f"| PUBLISHED committed -> seen on WatchPublishJob (relay, broker hop, notifier, stream) | "
            f"{percentile(b.published_to_seen, 50):.1f} | {percentile(b.published_to_seen, 99):.1f} |",
            "",
            f"Full distribution, one publish at a time: {r.publish}; not PUBLISHED: {r.publish_failed}.",
            "",
        ]
    if r.cpu_per_publish:
        lines += _cpu_table(r)
    if r.sustained is not None:
        s = r.sustained
        lines += [
            "### Sustained publishing",
            "",
            f"Offered {s.offered_rate:.0f} publishes/s (each an UpdateDraft then a timed PublishDraft) "
            "round-robin over 100 agents; terminal states watched on one `WatchPublishJobs` stream of the tenant. "
            f"Sent {s.sent}, "
            f"outcomes {s.outcomes}, not terminal within 30 s after the last send: {s.unfinished}, "
            f"send errors {s.send_errors}. Completed {s.completion_rate:.0f}/s; publish-to-terminal {s.latency}.",
            "(SUPERSEDED is expected here: an agent is published again about every 0.33 s.)",
            "",
        ]
    if r.steady is not None:
        st = r.steady
        lines += [
            f"The same at {st.offered_rate:.0f}/s offered ({_capacity(st)} on this machine): sent {st.sent}, "
            f"outcomes {st.outcomes}, not terminal {st.unfinished}, send errors {st.send_errors}; completed "
            f"{st.completion_rate:.0f}/s; publish-to-terminal {st.latency}.",
            "",
        ]
    if r.fanout is not None:
        fo = r.fanout
        lines += [
            "### Fan-out",
            "",
            f"{fo.watchers} concurrent `WatchPublishJobs` streams on one tenant (opened by 4 {_WATCHERS[fo.watcher]}, "
            "each process's streams on one HTTP/2 connection); "
            f"{fo.publishes} publishes, one at a time. Delay = arrival at the watcher - the job's `update_time` "
            f"(written in the state change's transaction). {fo.latency}. Deliveries {fo.deliveries} of "
            f"{fo.expected} expected; streams not served every change exactly once {fo.uneven_streams}; stream "
            f"errors {fo.stream_errors}. The notifier used {fo.server_cpu_us:.0f} us of CPU per delivery (an upper "
            "bound: its intake of the publishes' events is in the same window), the watchers "
            f"{fo.watcher_cpu_us:.0f} us per update.",
            "",
        ]
        if r.fanout_floor is not None:
            ff = r.fanout_floor
            lines += [
                f"Floor: {ff.watchers} watchers split the same way (4 {_WATCHERS[ff.watcher]},",
                "each process's streams on one HTTP/2 connection), on a bare grpc.aio server",
                "(`bench/fanout_floor.py`: no interceptors, token check, store or hub; one serialized update per",
                "change handed to every",
                f"stream's queue), with the platform stopped: {ff.publishes} publishes of 3 changes each, as far",
                "apart as the platform's p50 legs in its one-at-a-time run (during the fan-out they were longer).",
                f"Delay = arrival - the moment the server handed the change to the streams. {ff.latency}.",
                f"Deliveries {ff.deliveries} of {ff.expected}; streams not served every change exactly once",
                f"{ff.uneven_streams}; stream errors {ff.stream_errors}. The bare server used "
                f"{ff.server_cpu_us:.0f} us of CPU per delivery, the watchers {ff.watcher_cpu_us:.0f} us per update.",
                "",
            ]
    if r.rss:
        names = sorted({n for phase in r.rss.values() for n in phase} | set(r.rss_hwm))
        lines += [
            "### Memory (RSS, MiB)",
            "",
            "| service | idle | under load (peak sampled) | lifetime peak (VmHWM) |",
            "|---|---|---|---|",
            *(
                f"| {n} | {r.rss.get('idle', {}).get(n, float('nan')):.0f} | "
                f"{r.rss.get('load', {}).get(n, float('nan')):.0f} | {r.rss_hwm.get(n, float('nan')):.0f} |"
                for n in names
            ),
            "",
            "Load = the 5 MB publishes, RouteCall at full speed, 1,000 watchers and the sustained run.",
            "",
        ]
    if r.tracing:
        lines += [
            "## Tracing overhead",
            "",
            "Two more platforms, identical but for telemetry: `OTEL_SDK_DISABLED=true` (off) and",
            "`OTEL_TRACES_SAMPLER=always_on` with the OTLP/gRPC exporter (batch processor) sending to a local sink",
            f"process (on; the sink received {r.spans_exported:,} spans).",
            "",
            "| telemetry | publish-to-live p50 ms | p99 ms | RouteCall max /s | RouteCall one at a time p50 ms |",
            "|---|---|---|---|---|",
        ]
        for label, (lat, rc) in r.tracing.items():
            lines.append(f"| {label} | {lat.p50:.1f} | {lat.p99:.1f} | {rc.best.rate:,.0f} | {rc.sequential.p50:.2f} |")
        if "on" in r.tracing and "off" in r.tracing:
            on, off = r.tracing["on"], r.tracing["off"]
            lines += [
                "",
                f"Overhead of always_on tracing: publish-to-live p50 {on[0].p50 - off[0].p50:+.1f} ms "
                f"({(on[0].p50 / off[0].p50 - 1) * 100:+.0f}%); RouteCall throughput "
                f"{(on[1].best.rate / off[1].best.rate - 1) * 100:+.0f}%, one-at-a-time p50 "
                f"{on[1].sequential.p50 - off[1].sequential.p50:+.2f} ms.",
            ]
        lines.append("")
    lines += PATHS
    lines += FINDINGS
    if r.service_benches:
        lines += ["## Per-service benchmarks (bench/<service>_*.py, run by the same command)", ""]
        lines += routecall_table(r.service_benches.get("activation_routecall", ""))
        for name, text in r.service_benches.items():
            lines += [f"### bench/{name}.py", "", "```", text[-4000:], "```", ""]
    return "\n".join(lines) + "\n"


SERVICE_NAMES = ("config", "publisher", "notifier", "activation")


def _cpu_table(r: Results) -> list[str]:
    """CPU per publish by process, one at a time and (if measured) under the sustained load."""
    cores = int(r.machine.get("cores", "2") or 2)
    offered = f"under {r.sustained.offered_rate:.0f}/s offered" if r.sustained is not None else "under load"
    heads = ["one at a time"] + ([offered] if r.sustained_cpu else [])
    runs = [r.cpu_per_publish] + ([r.sustained_cpu] if r.sustained_cpu else [])
    groups = list(dict.fromkeys([*r.cpu_per_publish, *r.sustained_cpu]))
    services = [g for g in groups if g in SERVICE_NAMES]
    rest = [g for g in groups if g not in SERVICE_NAMES]

    def row(label: str, values: list[float]) -> str:
        return f"| {label} | " + " | ".join(f"{v:.1f}" for v in values) + " |"

    totals = [sum(run.values()) for run in runs]
    lines = [
        "### CPU per publish, by process (`/proc/<pid>/stat` of every process on the machine)",
        "",
        "Each publish includes its UpdateDraft. The sustained column divides the CPU used by the whole run",
        "(creating its 100 agents, sending, until every job was terminal or 30 s after the last send) by",
        "the publishes that reached a terminal state.",
        "",
        "| process | " + " | ".join(f"CPU ms per publish, {h}" for h in heads) + " |",
        "|---|" + "---|" * len(runs),
        *(row(g, [run.get(g, 0.0) for run in runs]) for g in services),
        row(f"**the {len(services)} services**", [sum(run.get(g, 0.0) for g in services) for run in runs]),
        *(row(g, [run.get(g, 0.0) for run in runs]) for g in rest),
        row("**everything**", totals),
        "",
        "Upper bound on throughput from this: "
        + "; ".join(
            f"{h}, {cores} cores x 1000 / {t:.1f} ms = {cores * 1000 / t:.0f} publishes/s"
            for h, t in zip(heads, totals, strict=True)
        )
        + f". 300/s on {cores} cores leaves {cores * 1000 / TARGETS['sustained_rate']:.1f} ms per publish "
        "for everything.",
        "",
    ]
    return lines


PATHS = [
    "## Paths (what each figure must pay at least)",
    "",
    "- Publish-to-live: 4 gRPC round trips (PublishDraft, WatchPublishJob's first message, GetVersion,",
    "  DeployBundle), 6 PostgreSQL commits (config's publish statement; publisher: intake-and-claim,",
    "  attempt count, PUBLISHED; activation's deploy; notifier's read-model write) and 2 broker hops",
    "  (publish.requested to the publisher, job.published to the notifier).",
    "- Fan-out: the PUBLISHED commit, one broker hop, the notifier's commit, one stream message.",
    "- RouteCall: one gRPC round trip and one (group) commit pinning the call.",
    "",
]

# Analysis written from profiles of earlier runs (kept with the code that produced them).
FINDINGS: list[str] = [
    "## Findings: what bounds each figure, and what changed",
    "",
    "Measured with py-spy (`py-spy record -f raw`, `--native` for the fan-out) on each service process,",
    "`/proc/<pid>/stat` CPU time of every process, and `log_statement=all` on the scratch database",
    "(statements per publish = PostgreSQL round trips). The tables above are from this run; figures quoted",
    "below are from the runs named with them. A machine's speed drifts (the same code once measured 18.4",
    "and 20.2 ms of service CPU per publish in consecutive runs), so every",
    "before/after of a code change comes from interleaved A/B runs (`git worktree` of the earlier commit,",
    "alternated with the new one, 150 sequential publishes each), never from two suite runs hours apart.",
    "",
    "1. **The machine sets the scale: compare each figure with its floor.** The same code (commit 8887686)",
    "   ran on two machines of this kind on 2026-12-03: first an Intel Xeon (runs until 10:40 UTC), then an",
    "   AMD EPYC (from 10:43 UTC). On the Intel machine a bare grpc.aio echo",
    "   call cost its server 119 us of CPU (`bench/activation_routecall.py`), the notifier 45 us per",
    "   delivery (`bench/notifier_fanout.py`) and the four services 18.4-18.6 ms per sequential publish",
    "   (`bench/publish_trace.py`); on the AMD machine the same three figures were 341 us, 97 us",
    "   and 37.7 ms: 2.0-2.9x. Every target is absolute, so a run on a slower machine misses more of them",
    "   with the same code; the floors and the per-process CPU table of the same run say how much of a",
    "   figure is the machine. This is why the fan-out now has a floor of its own (next item), and why a",
    "   miss says when the floor alone misses the target. The AMD machine of the run above (from 12:27",
    "   UTC, commit c522ced and later) was slower again than the one of 10:43-12:30: grpc.aio unary floor",
    "   1.03-1.70 ms against 0.71, PostgreSQL commit 0.42-0.67 against 0.35, the bare echo server 453-583",
    "   us of CPU per call against 341-393 and 1,469-2,898/s from h2load against 3,245-3,874/s; in three",
    "   of its seven h2load runs the bare echo server itself stayed under RouteCall's 2,000/s. Its",
    "   pure-Python speed was not the difference (a fixed 10M-iteration loop: 0.31-0.55 s, against",
    "   0.81-1.05 s on the earlier AMD run). A third machine ran from 15:58 UTC (commit 1492051 and later),",
    "   an Intel Xeon @ 2.80GHz unlike the first: the slowest pure Python of the day (the same loop",
    "   1.44-1.62 s) with floors as good as the best AMD run's (PostgreSQL commit 0.34-0.38 ms, grpc.aio",
    "   unary 0.86-1.02 ms), and a speed that swung within the hour: the bare echo server gave 4,031,",
    "   2,585, 3,145 and 1,328/s from h2load in four runs between 15:59 and 16:39 UTC, and the fan-out's",
    "   p99 was 385.2 then 129.0 ms in two `make bench` runs (its bare floor 125.4 then 61.6 ms).",
    "   Since 17:35 UTC that day the bare echo server and the per-service scripts' servers run on the",
    "   services' event loop (`bench.common.run_server`), as the fan-out floor already did; before, they",
    "   ran on the standard library's loop. On this machine, four interleaved pairs of 5 s h2load runs of",
    "   the echo server gave uvloop 3,091 / 2,917 / 2,182 / 2,294 calls/s against asyncio's 3,159 /",
    "   1,626 / 3,390 / 4,658, and RouteCall 545 / 1,328 / 1,780 / 529 against 629 / 1,345 / 2,040 /",
    "   513: the machine's swings (4x within minutes) were larger than any difference between the loops.",
    "   A fourth machine ran from 18:30 UTC (commit 7810bb9 and later), an AMD EPYC with fast pure",
    "   Python (a 5M-iteration loop 0.29 s, half the second AMD run's time) and good floors (PostgreSQL",
    "   commit 0.41 ms, grpc.aio unary 0.90 ms, the bare echo server 2,929-3,575/s from h2load), yet the",
    "   services' CPU per sequential publish was 35.7-40.4 ms, as on the slower AMD runs.",
    "2. **Fan-out: with C++ watchers the bare server is near 100 ms; the platform is 2-3x it.**",
    "   `bench/fanout_floor.py` serves WatchPublishJobs with nothing but grpc.aio (no interceptors, token",
    "   check, store or hub; each change serialized once and handed to every stream's queue) to the same",
    "   1,000 watchers, split the same way. The watchers are C++ (`bench/cpp/watch.cc`) since 2026-12-03",
    "   13:20 UTC: on the slower AMD machine (item 1) the grpc.aio watchers spent 125-136 us of CPU per",
    "   update and the C++ ones 33-47 us, on the same two cores as the server. The bare server's p99 was",
    "   84.7-131.0 ms with C++ watchers in six runs (under the target once, in the run above) against",
    "   183.8-198.3 ms with grpc.aio ones in three interleaved runs; the platform's p99 241.3-415.6 ms",
    "   (seven) against 418.6-435.5 ms (three), its p50 120-162 against 185-210 ms. So the fan-out's miss",
    "   is now mostly the platform's: the notifier spends 87-101 us of CPU per delivery against the bare",
    "   server's 63-76 (its window also holds its intake of the publishes' events, so its figure is an",
    "   upper bound), each change first travels two commits and a broker hop, and the rest of each",
    "   publish's CPU shares the cores (the CPU table). A py-spy profile of the notifier during the",
    "   fan-out (this machine) puts 10-15% of its samples in its own Python (hub, stream generators,",
    "   wrappers) and the rest in grpc.aio's Cython and poller thread, which py-spy cannot split;",
    "   earlier native profile (Intel): 21% of the notifier's samples in `sendmsg`, one per stream",
    "   message (gRPC does not coalesce HTTP/2 writes across streams), 12% in `write` (grpc.aio's",
    "   poller waking the event loop).",
    "3. **Publish-to-live p50 is CPU on two cores.** The CPU table's one-at-a-time column counts every",
    "   process: on the AMD machine 52-81 ms of CPU per sequential publish (services 31.8-48.7, PostgreSQL",
    "   9.4-15.0, RabbitMQ 6.3-10.6, load generator 3.5-5.5) against a p50 of 25.6-48.6 ms (39.3-52.2 ms",
    "   on the slower runs of item 1), so the off-path work of the same publish (job.submitted,",
    "   job.processing and version.live travelling to the notifier, outbox clean-up) competes with the",
    "   critical path. It is this publish's own off-path work, not the previous one's tail: 150 ms of",
    "   quiet before each publish lowered p50 by 1.3-4.7 ms only (three interleaved pairs, 100 publishes",
    "   each: 50.0 -> 45.7, 46.4 -> 41.7, 38.4 -> 37.1 ms). Timed inside the publisher (slower AMD run),",
    "   GetVersion took 7.1 ms at p50 during publishes against 2.9-3.2 ms on an idle platform and a",
    "   1.39 ms unary floor, DeployBundle 8.7 ms. No timer, batching window or",
    "   sleep is on the path (`bench/publish_trace.py` times each leg); statements per publish fell",
    "   89.7 -> 57.3 -> 40.0 -> 34.8 over four rounds. On the Intel machine the whole machine spent ~27 ms",
    "   per publish and p50 was 19.3-24.4 ms. 15 ms needs roughly half the CPU per publish again. (The AMD",
    "   machine also slowed during the session: a fixed pure-Python loop took 0.81-0.89 s, later 0.90-1.05 s.)",
    "   Span by span (`bench/publish_spans.py`, every span sampled, 70 sequential publishes on the fourth",
    "   machine of item 1, p50 37.3 ms; medians in ms from the start of PublishDraft's server span):",
    "   PublishDraft's server span 3.7; config's relay publishes the request at 4.3 (confirmed in 3.3);",
    "   the publisher's consumer starts at 8.3 (4.0 after the publish, against a 1.9 ms publish-to-consume",
    "   floor) and holds it 4.1 (intake and claim); GetVersion takes 5.5 on the publisher's side but 1.2",
    "   in config's server span, DeployBundle 6.6 against activation's 3.5, so 7.4 ms of the two calls",
    "   are spent between the processes against a 1.8 ms floor for two unary round trips; the publisher",
    "   publishes job.published at 29.7 and the notifier starts on it at 32.8. The notifier's own",
    "   off-path work is not what slows those hops: running it at nice 10 left p50 where it was (three",
    "   interleaved pairs of 120 publishes: 37.6 / 37.4 / 34.9 ms at nice 0 against 36.0 / 38.6 / 37.8).",
    "4. **Sustained publishing is the same CPU bound.** The CPU table's second column: on the AMD machine",
    "   25.0-33.8 ms of CPU per publish for everything under load (services 16.0-21.2, PostgreSQL 4.7-6.7,",
    "   RabbitMQ 2.2-3.0), so two cores complete 57-72/s; on the first Intel machine ~15 ms and 121-137/s,",
    "   on the second 26.4-31.4 ms and 60-75/s.",
    "   300/s leaves 6.7 ms per publish for everything, PostgreSQL's and RabbitMQ's share included.",
    "   The queue grows without bound above capacity, and so does the p99; below it the p99 holds (the",
    "   100/s run on the Intel machine: 516-998 ms; on the AMD machine 100/s is above capacity too).",
    "5. **The previous round (A/B, Intel):** p50 21.2-22.4 -> 19.3-20.1 ms, service CPU per publish",
    "   20.5-22.3 -> 18.4-18.6 ms: (a) every service on uvloop (`SPEAKO_EVENT_LOOP`); (b) the publisher's",
    "   calls through `chassis.clients.ServiceClient` instead of two grpc.aio client interceptors, which run",
    "   every call in an extra task (echo call: 114 -> 205 us of client CPU with them); (c) the notifier's",
    "   feed tailer no longer reads back its own commit (notifier statements per publish 16.0 -> 14.1);",
    "   (d) PublishDraft stores a new version in the statement that records the job, and DeployBundle is",
    "   two autocommit statements (read, then compare-and-set from the live version read).",
    "6. **Earlier rounds (2026-11-22 and before).** Notifier intake in batches (one transaction and one",
    "   feed lock per batch); its own commits handed to its tailer; DeployBundle's version.live handed to",
    "   the local relay at commit. Publisher: a job accepted and claimed in one statement (7.7",
    "   transactions per job -> 5 single statements). Config: PublishDraft's writes in one statement.",
    "   Chassis: outbox rows handed to the relay at commit; no pool `reset` round trip.",
    "7. **RouteCall.** The handler reads no database (routing table in memory) and pins each call with a",
    "   group commit (`services/activation/calls.py`). Every service freezes its start-up heap once serving",
    "   (`chassis.server.freeze_startup_heap`): under 500 calls/s a full collection walked ~51,000",
    "   start-up objects and stopped the loop for 41.5 ms. The closed loop is driven by h2load",
    "   (`bench/h2load.py`, C): a grpc.aio client spends about as much CPU per call as the server it",
    "   measures, so on 2 cores it would cap the figure. RouteCall costs about twice the echo server's CPU",
    "   per call on both machines (283 vs 119 us on Intel, 648 vs 341 us on AMD), so its maximum follows",
    "   the machine: 3,507-4,562/s on Intel, 1,414-2,044/s on AMD (echo 3,245-3,874/s there), and",
    "   1,004-1,460/s on the slower AMD run above (echo 1,469-2,898/s).",
    "   On the fourth machine (item 1) RouteCall stayed at 1,058-1,329/s while the echo server gave",
    "   2,929-3,575/s: 913-1,098 us of server CPU per call against 371-440. The group commit was not",
    "   grouping: a count of each batch's size (h2load, 64 streams) gave 10,794 batches for 12,152",
    "   calls, 1.1 calls per batch, because PostgreSQL committed each batch before the next call",
    "   arrived. With the pin replaced by nothing RouteCall cost 662-679 us per call, and with",
    "   `await asyncio.sleep(0)` in its place 657-684 us, so the waiting is not the cost: the batches",
    "   are, about 0.5 ms of activation's CPU each (fitted from runs whose batches held 1.1, 2.7 and 7.1",
    "   calls; the same statement in a process of its own costs 0.16 ms). Now a batch lingers 3 ms",
    "   while activation's loop thread is at least 90% busy over 50 ms (until under 60%;",
    "   `BusyLoopLinger`). Interleaved A/B of `bench/activation_routecall.py` (two pairs, base first):",
    "   maximum 1,082 / 1,058 -> 1,465 / 1,722 calls/s, server CPU per call 1,083 / 1,098 -> 787 /",
    "   668 us, without the chassis interceptors 891 / 732 -> 511 / 509 us; at 500/s the loop is not",
    "   saturated, so nothing lingers: p50 39.0* / 4.79 -> 4.25 / 3.95 ms, p99 155.6* / 9.67 -> 8.64",
    "   / 8.64 ms (* the first base run shared the machine with a test and lint run). The interceptors",
    "   themselves cost nothing measurable (an echo server with 0, 1 or 2 caching interceptors: 386-425",
    "   us per call either way); what the chassis adds is its work (token check, metrics, span). Split",
    "   on the activation service behind a plain server with one or both (two interleaved rounds,",
    "   h2load): none 564-599 us per call (1,948-2,066/s), the auth-and-metrics pipeline alone 620-625,",
    "   tracing alone 654-696, both 715-737 (1,574-1,611/s). The span is most of it: OpenTelemetry's",
    "   `start_span` of a span it will not record costs 11.8 us in a tight loop (a bare",
    "   `NonRecordingSpan` 2.3 us), and Python in a busy server runs about three times slower than in",
    "   a tight loop (the whole tracing wrapper: 26 us in a loop, about 90 us in the server). So a call",
    "   without a caller's trace context now gets its never-sampled root span built directly",
    "   (`ServerTracing`: the provider's id generator, the same flags; the SDK still makes every other",
    "   span). Three interleaved pairs on that plain server with both interceptors: 822 / 711 / 691 ->",
    "   691 / 674 / 652 us per call, 1,377 / 1,615 / 1,661 -> 1,624 / 1,732 / 1,777 calls/s.",
    "   `make bench` on this machine: before the change 1,096/s in the platform and 1,279/s from the",
    "   script; with the linger (18:57 UTC, the code of b691961) 1,714/s and 1,666/s; in the run above, which also",
    "   has the lean root span, 1,684/s and 1,749/s (server CPU 650 us per call; 2,205/s and 534",
    "   us without the interceptors). In the 18:57 run the platform's one 5 s run at 500/s had a p99 of",
    "   15.1 ms (8.4 ms before the change, 5.1 ms in the run above); nothing lingers at that rate (a",
    "   separate check: 7,601 calls in 7,534 batches, p99 7.48-10.31 ms in three runs), so that was the",
    "   machine's noise, as the spread of the script's three runs (6.48-9.83 ms) shows.",
    "",
]


def bench_figures(text: str) -> dict[str, float]:
    """The figures a service benchmark printed on its ``FIGURES {json}`` line (empty if none)."""
    for line in reversed(text.splitlines()):
        if line.startswith("FIGURES "):
            figures: dict[str, float] = json.loads(line.removeprefix("FIGURES "))
            return figures
    return {}


def routecall_table(text: str) -> list[str]:
    """RouteCall next to the bare echo server, from bench/activation_routecall.py's figures."""
    f = bench_figures(text)
    if not f:
        return []
    rate, p99 = f["routecall_max_per_s"], f["routecall_p99_ms_at_500"]
    max_verdict = _ok(
        rate >= TARGETS["routecall_rate"],
        f["echo_max_per_s"] < TARGETS["routecall_rate"],
        clean=not f.get("routecall_max_errors", 0),
    )
    return [
        "### RouteCall next to a bare grpc.aio echo server (bench/activation_routecall.py)",
        "",
        "Both servers are separate processes measured the same way in one run (load average "
        f"{f['load_average']:.1f} at its end): closed loop from h2load (2 connections x 32 streams; "
        "bench/h2load.py), open loop at 500/s from a grpc.aio client. RouteCall's answers are checked "
        "against the calls pinned in PostgreSQL.",
        "",
        "| figure | RouteCall | echo | ratio | target | verdict |",
        "|---|---|---|---|---|---|",
        f"| max calls/s | {rate:,.0f} | {f['echo_max_per_s']:,.0f} | {rate / f['echo_max_per_s']:.2f} | "
        f">= 2,000/s | {max_verdict} |",
        f"| p50 at 500/s | {f['routecall_p50_ms_at_500']:.2f} ms | {f['echo_p50_ms_at_500']:.2f} ms | "
        f"{_ratio(f['routecall_p50_ms_at_500'], f['echo_p50_ms_at_500'])} | - | - |",
        f"| p99 at 500/s (median of 3 runs; worst run "
        f"{f.get('routecall_p99_ms_at_500_worst_run', float('nan')):.2f} ms) | {p99:.2f} ms | "
        f"{f['echo_p99_ms_at_500']:.2f} ms | "
        f"{_ratio(p99, f['echo_p99_ms_at_500'])} | < 10 ms | {_ok(p99 < TARGETS['routecall_p99_at_500'])} |",
        f"| server CPU per call | {f['routecall_server_cpu_us']:.0f} us | {f['echo_server_cpu_us']:.0f} us | "
        f"{_ratio(f['routecall_server_cpu_us'], f['echo_server_cpu_us'])} | - | - |",
        "",
        f"Without the chassis interceptors (the same use cases on a plain grpc.aio server in the same process) "
        f"RouteCall costs {f['routecall_bare_server_cpu_us']:.0f} us of server CPU per call. From a grpc.aio "
        f"client process (1 x 64 callers) instead of h2load: RouteCall "
        f"{f.get('routecall_max_per_s_grpc_aio_client', float('nan')):,.0f}/s, echo "
        f"{f.get('echo_max_per_s_grpc_aio_client', float('nan')):,.0f}/s: the Python client's own CPU caps both.",
        "",
    ]


def headline(r: Results) -> str:
    """One line per platform figure, for the terminal."""
    lines = [f"{row[0]}: {row[2]} (target {row[1]}) {row[5]}" for row in rows(r)]
    f = bench_figures(r.service_benches.get("activation_routecall", ""))
    if f:
        lines.append(
            f"RouteCall (bench/activation_routecall.py): {f['routecall_max_per_s']:,.0f}/s max "
            f"(echo {f['echo_max_per_s']:,.0f}/s), p99 at 500/s {f['routecall_p99_ms_at_500']:.2f} ms "
            f"(echo {f['echo_p99_ms_at_500']:.2f} ms)"
        )
    return "\n".join(lines)
