"""The fan-out benchmark on the platform, with both watcher programs: the notifier's real updates
are decoded, heartbeats are not counted, every change reaches every stream once, and refused
streams are counted as errors."""

from __future__ import annotations

import pytest

from bench import cpp_watch
from bench.common import scratch
from bench.platform_bench import Watcher, fanout, running, watch_streams


@pytest.mark.parametrize("watcher", ["python", "cpp"])
async def test_every_watcher_gets_each_state_change_once_and_refused_streams_are_errors(watcher: Watcher) -> None:
    if watcher == "cpp" and not cpp_watch.available():
        pytest.skip("g++ and libgrpc++-dev are missing (make test installs them)")
    # Heartbeats every 0.2 s on idle streams: they repeat the last state and must not count.
    async with scratch("fan") as s, running(s, "fan", SPEAKO_NOTIFIER_HEARTBEAT_S="0.2") as (plat, client):
        result = await fanout(client, plat, watchers=8, publishes=2, watcher=watcher)
        # The same program with a token the notifier refuses: three failed streams, with their status.
        addr = plat.services["notifier"].addr
        async with watch_streams(addr, "tenants/t", 3, procs=1, client=watcher, bearer_token="not-a-jwt") as ws:
            refused = await ws.collect()
    assert result.stream_errors == 0
    # SUBMITTED, PROCESSING and PUBLISHED of each publish.
    assert result.expected == 8 * 2 * 3
    assert result.deliveries == result.expected
    assert result.uneven_streams == 0
    # Delay from the job's update_time (written in its state change's transaction) to arrival.
    assert 0 < result.latency.p50 <= result.latency.max < 10_000
    assert refused.errors == 3
    assert refused.delays == []
    assert refused.per_stream == [0, 0, 0]
    assert all(message.startswith("UNAUTHENTICATED: ") for message in refused.error_messages), refused.error_messages
