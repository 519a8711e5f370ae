"""bench/report.py: the fan-out row against its measured floor, and the CPU-per-publish table."""

from __future__ import annotations

import dataclasses

from bench import report
from bench.common import Latency
from bench.floors import Floors
from bench.load import Throughput
from bench.platform_bench import Fanout, Sustained


def _lat(p50: float, p99: float) -> Latency:
    return Latency(100, p50, p99, p99, p99, p50)


def _results() -> report.Results:
    unary = _lat(0.3, 0.5)
    floors = Floors(
        _lat(0.1, 0.2), _lat(0.5, 0.9), _lat(0.6, 1.0), unary, Throughput(8000, 0, unary), Throughput(500, 0, unary)
    )
    return report.Results(machine={"cores": "2"}, floors=floors)


def _fanout(p99: float) -> Fanout:
    return Fanout(1000, 15, 45000, 45000, _lat(p99 / 2, p99), 0, 0, 60.0)


def _fanout_row(r: report.Results) -> tuple[str, ...]:
    return next(row for row in report.rows(r) if row[0].startswith("Fan-out"))


def test_fanout_is_compared_with_the_bare_fanout_floor_when_it_was_measured() -> None:
    r = _results()
    r.fanout = _fanout(240.0)
    r.fanout_floor = _fanout(120.0)
    row = _fanout_row(r)
    # + 2 PostgreSQL commits (0.1 each) and 1 broker round trip (0.6) at p50: 120.8 ms.
    assert row[3] == "120.8 ms (bare fan-out p99 120.0 + commits and broker hop 0.8)"
    assert row[4] == "2.0x"
    # The bare server alone is above the 100 ms target.
    assert row[5] == "**missed** (the floor alone misses it here)"
    assert "grpc.aio fan-out to 1000 streams" in report.render(r)


def test_fanout_without_its_floor_is_compared_with_the_unary_floors_of_its_path() -> None:
    r = _results()
    r.fanout = _fanout(90.0)
    row = _fanout_row(r)
    # 1 gRPC (0.3) + 2 PostgreSQL commits (0.1 each) + 1 broker round trip (0.6) at p50.
    assert row[3] == "1.1 ms"
    assert row[5] == "met"
    assert "grpc.aio fan-out to" not in report.render(r)


def test_fanout_with_a_stream_that_missed_a_change_is_not_met() -> None:
    r = _results()
    r.fanout = Fanout(1000, 15, 45000, 45000, _lat(45.0, 90.0), 0, 1, 60.0)
    assert _fanout_row(r)[5] == "**missed**"


def test_cpu_table_sums_the_services_and_everything_and_bounds_the_throughput() -> None:
    r = _results()
    r.cpu_per_publish = {"config": 10.0, "publisher": 10.0, "postgresql": 12.0, "rabbitmq": 8.0}
    r.sustained_cpu = {"config": 6.0, "publisher": 4.0, "postgresql": 5.0, "rabbitmq": 5.0}
    r.sustained = Sustained(300.0, 3600, {"PUBLISHED": 3600}, 100.0, _lat(9000.0, 15000.0), 0, 0)
    table = "\n".join(report._cpu_table(r))
    assert "| **the 2 services** | 20.0 | 10.0 |" in table
    assert "| **everything** | 40.0 | 20.0 |" in table
    assert "one at a time, 2 cores x 1000 / 40.0 ms = 50 publishes/s" in table
    assert "under 300/s offered, 2 cores x 1000 / 20.0 ms = 100 publishes/s" in table
    assert "leaves 6.7 ms per publish" in table
    assert report.fmt_cpu({"config": 1.25, "postgresql": 2.0}) == "config 1.2, postgresql 2.0; all 3.2"


def test_the_second_sustained_run_is_labelled_by_what_the_machine_completed() -> None:
    r = _results()
    r.steady = Sustained(100.0, 1000, {"PUBLISHED": 1000}, 99.0, _lat(300.0, 900.0), 0, 0)
    assert any("(below capacity)" in row[0] for row in report.rows(r))
    r.steady = Sustained(100.0, 1000, {"PUBLISHED": 1000}, 56.0, _lat(4000.0, 6600.0), 0, 0)
    assert any("(above capacity)" in row[0] for row in report.rows(r))


def test_a_miss_says_when_the_floor_alone_misses_the_target() -> None:
    r = _results()
    r.fanout = _fanout(150.0)
    r.fanout_floor = _fanout(60.0)
    assert _fanout_row(r)[5] == "**missed**"
    r.publish = _lat(20.0, 40.0)
    p50 = next(row for row in report.rows(r) if row[0].endswith("p50"))
    assert p50[5] == "**missed**"
    # 4 gRPC + 6 commits + 2 broker round trips at p50 above 15 ms: no code on the path meets it.
    assert r.floors is not None
    r.floors = dataclasses.replace(
        r.floors, grpc_unary=_lat(1.5, 3.0), pg_commit=_lat(0.7, 1.5), amqp_round_trip=_lat(2.5, 5.0)
    )
    p50 = next(row for row in report.rows(r) if row[0].endswith("p50"))
    assert p50[3] == "15.2 ms"
    assert p50[5] == "**missed** (the floor alone misses it here)"


def test_a_fanout_that_lost_deliveries_is_not_excused_by_its_floor() -> None:
    r = _results()
    r.fanout_floor = _fanout(120.0)
    r.fanout = Fanout(1000, 15, 40000, 45000, _lat(30.0, 60.0), 0, 0, 60.0)
    assert _fanout_row(r)[5] == "**missed**"
    r.fanout = Fanout(1000, 15, 45000, 45000, _lat(30.0, 60.0), 0, 3, 60.0)
    assert _fanout_row(r)[5] == "**missed**"
