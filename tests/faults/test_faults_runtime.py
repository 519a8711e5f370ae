"""A deploy target that fails, hangs or answers slowly (the publisher's SPEAKO_RUNTIME_ADDR)."""

from __future__ import annotations

import asyncio

import pytest

from speako.activation.v1 import activation_service_pb2 as act
from speako.config.v1 import config_service_pb2 as cfg
from speako.config.v1 import resources_pb2 as res
from tests.faults.checker import Checker, describe, version_number
from tests.faults.fake_runtime import Behaviour
from tests.faults.scenario import checking

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]

State = res.PublishJob.State
Reason = res.PublishError.Reason


async def _run(c: Checker, per_agent: int) -> float | None:
    jobs = await c.burst(per_agent * len(c.agents), rate=20)
    assert jobs
    c.fault_cleared()
    return await c.settle()


def _outcomes(c: Checker, agent: str) -> list[res.PublishJob]:
    return [j for n, j in c.final.items() if c.accepted[n] == agent and n not in c.initial_jobs]


async def _failed_keeps_live_and_draft(c: Checker, agent: str) -> None:
    """Guarantee 3: the previous live version still serves and the draft holds what was published."""
    status = await c.activation.GetAgentStatus(act.GetAgentStatusRequest(name=agent), metadata=c.md, timeout=5)
    if version_number(status.live_version) != c.initial_live[agent]:
        c.backwards += 1
        c.notes.append(
            f"{agent}: live moved from v{c.initial_live[agent]} to {status.live_version}; every publish failed"
        )
    draft = await c.config.GetDraft(cfg.GetDraftRequest(name=f"{agent}/draft"), metadata=c.md, timeout=5)
    if draft.config != c.last_config[agent]:
        c.lost += 1
        c.notes.append(f"{agent}: the draft changed after a failed publish")


async def test_runtime_fails_hangs_and_is_slow(fp):
    async with (
        checking(fp, "rt-fail", agents=4) as failing,
        checking(fp, "rt-hang", agents=2) as hanging,
        checking(fp, "rt-slow", agents=4) as slow,
    ):
        # Failing: two agents see UNAVAILABLE twice per version (retried), two have every bundle rejected.
        flaky, rejected = failing.agents[:2], failing.agents[2:]
        for agent in flaky:
            fp.runtime.behaviours[agent] = Behaviour(unavailable_first=2)
        for agent in rejected:
            fp.runtime.behaviours[agent] = Behaviour(reject=True)
        # Hanging: one agent's runtime never answers, one answers after 5 s (longer than the 3 s
        # attempt timeout, so each attempt is cut): both fail by the 30 s deadline.
        fp.runtime.behaviours[hanging.agents[0]] = Behaviour(hang=True)
        fp.runtime.behaviours[hanging.agents[1]] = Behaviour(delay_s=5.0)
        # Slow: 1.5 s per deploy, under the attempt timeout.
        for agent in slow.agents:
            fp.runtime.behaviours[agent] = Behaviour(delay_s=1.5)
        recoveries = await asyncio.gather(_run(failing, 3), _run(hanging, 2), _run(slow, 3))

        for agent in rejected + hanging.agents:
            checker = failing if agent in rejected else hanging
            await _failed_keeps_live_and_draft(checker, agent)
        for agent in flaky:
            for job in _outcomes(failing, agent):
                assert job.state in (State.STATE_PUBLISHED, State.STATE_SUPERSEDED), job
                if job.state == State.STATE_PUBLISHED:
                    assert job.attempts >= 3, job
        for agent in rejected:
            for job in _outcomes(failing, agent):
                assert job.state == State.STATE_FAILED and job.error.reason == Reason.REASON_INVALID_CONFIG, job
        # Every attempt is cut by its timeout and 20 attempts of 3 s cannot fit in 30 s: the
        # deadline ends the retries, so TIMEOUT.
        for agent in hanging.agents:
            for job in _outcomes(hanging, agent):
                assert job.state == State.STATE_FAILED and job.error.reason == Reason.REASON_TIMEOUT, job
        rows = [
            await failing.verdict(
                "Runtime fails",
                "UNAVAILABLE x2 per version (2 agents); every bundle rejected (2 agents)",
                recoveries[0],
            ),
            await hanging.verdict(
                "Runtime hangs",
                "never answers (1 agent); answers after 5 s > 3 s attempt timeout (1 agent)",
                recoveries[1],
            ),
            await slow.verdict("Runtime slow", "every deploy answered after 1.5 s", recoveries[2]),
        ]
    for row in rows:
        assert row.ok, describe(row)
