"""Publish-to-live, one publish at a time, with its three legs: the quick figure to iterate on.

The four services run as processes on a scratch database and vhost (as in ``make bench``); each
round publishes ``-n`` times one at a time and prints p50/p99 of the whole and of each leg, the
load average and the CPU each service used per publish.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from bench.common import percentile, scratch
from bench.platform_bench import CpuMeter, publish_latency, running


def _leg(name: str, values: list[float]) -> str:
    return f"{name} {percentile(values, 50):.1f}/{percentile(values, 99):.1f}"


async def main(n: int, rounds: int) -> None:
    """Run ``rounds`` rounds of ``n`` sequential publishes on one platform."""
    async with scratch("trace") as s, running(s, "trace") as (plat, client):
        await asyncio.sleep(1.0)
        for r in range(rounds):
            cpu = CpuMeter(plat)
            cpu.start()
            lat, legs, failed = await publish_latency(client, n, agent_id=f"trace-{r}")
            used = cpu.stop()
            print(f"round {r + 1}: load {os.getloadavg()[0]:.2f}  {lat}; not published {failed}")
            print(
                "  legs p50/p99 ms: "
                + ", ".join(
                    (
                        _leg("submitted->processing", legs.to_processing),
                        _leg("processing->published", legs.processing_to_published),
                        _leg("published->seen", legs.published_to_seen),
                    )
                )
            )
            print("  CPU ms per publish: " + ", ".join(f"{k} {v * 1000 / (n + 10):.1f}" for k, v in used.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.publish_trace", description=main.__doc__)
    parser.add_argument("-n", type=int, default=100, help="sequential publishes per round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds))
