"""bench/fanout_floor.py with the real watch workers (grpc.aio and C++): every change reaches every
stream, once."""

from __future__ import annotations

import pytest

from bench import cpp_watch
from bench.platform_bench import Watcher, fanout_floor


@pytest.mark.parametrize("watcher", ["python", "cpp"])
async def test_each_publish_reaches_every_watcher_three_times(watcher: Watcher) -> None:
    watchers = 3  # over 4 worker processes: one of them has no stream (COUNT 0)
    if watcher == "cpp" and not cpp_watch.available():
        pytest.skip("g++ and libgrpc++-dev are missing (make test installs them)")
    result = await fanout_floor(watchers=watchers, publishes=2, gaps_ms=(1.0, 2.0), watcher=watcher)
    assert result.watcher == watcher
    assert result.stream_errors == 0
    assert result.expected == watchers * 2 * 3
    assert result.deliveries == result.expected
    assert result.uneven_streams == 0
    # Delays are measured from the moment the server handed the change over, on this machine's
    # clock: positive, and far below a second (a watcher that dropped the nanoseconds of
    # update_time would be off by up to 1 s).
    assert 0 < result.latency.p50 <= result.latency.max < 500
    assert result.watcher_cpu_us > 0
