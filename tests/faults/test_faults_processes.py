"""Service processes killed, stopped gracefully or restarted during a burst of publishes."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.faults.checker import StreamRecorder, describe, replay
from tests.faults.scenario import checking
from tests.harness import SERVICES

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]


@pytest.mark.parametrize("service", SERVICES)
async def test_sigkill_each_service_during_burst(fp, service):
    async with checking(fp, f"kill-{service[:4]}") as c:
        burst = asyncio.create_task(c.burst(30, rate=15))
        await asyncio.sleep(0.8)
        await fp.service(service).kill()
        await asyncio.sleep(1.0)
        await fp.restart(service)
        c.fault_cleared()
        await burst
        row = await c.verdict(f"SIGKILL {service}", "SIGKILL mid-burst, restarted 1 s later", await c.settle())
    assert row.ok, describe(row)


@pytest.mark.parametrize("service", SERVICES)
async def test_sigterm_under_load_loses_nothing(fp, service):
    async with checking(fp, f"term-{service[:4]}") as c:
        burst = asyncio.create_task(c.burst(30, rate=15))
        await asyncio.sleep(0.8)
        code = await fp.service(service).stop(signal.SIGTERM, timeout=20)
        await fp.restart(service)
        c.fault_cleared()
        await burst
        row = await c.verdict(f"SIGTERM {service}", "SIGTERM mid-burst (graceful), restarted", await c.settle())
    assert code == 0, f"{service} exited with {code} on SIGTERM:\n{fp.service(service).log_text()[-3000:]}"
    assert row.ok, describe(row)


async def test_notifier_restart_mid_resumed_streams(fp):
    async with checking(fp, "streams") as c:
        parent = f"tenants/{c.tenant}"
        dashboards = [StreamRecorder(c.notifier, c.md, parent) for _ in range(8)]
        for d in dashboards:
            d.start()
        await asyncio.gather(*(d.wait_token() for d in dashboards))
        burst = asyncio.create_task(c.burst(40, rate=10))
        await asyncio.sleep(1.0)
        await fp.service("notifier").kill()
        await asyncio.sleep(0.5)
        await fp.restart("notifier")
        await asyncio.sleep(1.0)  # the streams resume; then the notifier goes again, gracefully
        await fp.service("notifier").stop(signal.SIGTERM)
        await fp.restart("notifier")
        c.fault_cleared()
        await burst
        recovery = await c.settle()
        jobs = set(c.accepted) - c.initial_jobs
        # Each dashboard must end up with exactly the notifier's ordered history after its first token.
        for _ in range(100):
            if all(jobs <= d.terminal_jobs() for d in dashboards):
                break
            await asyncio.sleep(0.1)
        for d in dashboards:
            await d.stop()
        reference = await replay(c.notifier, c.md, parent, min(d.first_token for d in dashboards), jobs)
        expected = [u for u in reference if u[0] in jobs]
        gaps = 0
        disorder = 0
        for i, d in enumerate(dashboards):
            got = [u for u in d.updates if u[0] in jobs]
            if got != expected:
                missing = [u for u in expected if u not in got]
                if missing:
                    gaps += len({u[0] for u in missing})
                    c.notes.append(f"dashboard {i} missed {len(missing)} update(s), e.g. {missing[0]}")
                else:
                    disorder += 1
                    c.notes.append(f"dashboard {i} got {len(got)} updates, expected {len(expected)} in order")
        resumes = sum(d.resumes for d in dashboards)
        c.notes.append(
            f"{len(dashboards)} dashboards resumed {resumes} times in total; reference {len(expected)} updates"
        )
        row = await c.verdict(
            "Notifier restart mid resumed streams",
            "notifier SIGKILL + restart, then SIGTERM + restart, 8 resuming dashboards",
            recovery,
        )
        row.lost += gaps
        row.backwards += disorder
    assert row.ok, describe(row)
    assert resumes >= len(dashboards), "the streams were not actually cut and resumed"
