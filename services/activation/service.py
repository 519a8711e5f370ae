"""Use cases of the activation service: each runs the domain rules inside one store transaction.

The servicer translates protobuf to these calls and domain refusals to gRPC status; this layer
owns transactions, events (via the outbox, same transaction) and the routing hot path.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf import json_format

from chassis.names import AgentName
from services.activation.calls import CallRecorder
from services.activation.domain.deploy import DeployOutcome, VerifiedBundle, decide_deploy
from services.activation.domain.errors import (
    DeployContended,
    NumberNotHeld,
    NumberTaken,
    PreconditionsUnmet,
    RequestIdReused,
    UnknownNumber,
    Violation,
)
from services.activation.domain.launch import launch_violations
from services.activation.domain.lifecycle import (
    AgentState,
    activation_target,
    deactivation_target,
    routes_calls,
)
from services.activation.domain.limits import MAX_PHONE_NUMBERS_PER_AGENT
from services.activation.domain.routing import RoutingTable
from services.activation.domain.status import AgentStatusView, CallRecord, DeploymentView
from services.activation.messaging import OutboxEvents
from services.activation.store import ActivationStore, Tx, version_name
from services.config.domain.checklist import Finding, check_config
from speako.config.v1 import resources_pb2

CheckConfig = Callable[[resources_pb2.AgentConfig], Sequence[Finding]]

# Compare-and-set rounds a deploy makes against concurrent deploys of the same agent.
_DEPLOY_RACES = 20


@dataclass(frozen=True)
class RequestKey:
    """request_id idempotency: the id, the method and a fingerprint of the request's content."""

    request_id: uuid.UUID
    method: str
    fingerprint: str


def config_from_canonical(canonical: bytes) -> resources_pb2.AgentConfig:
    """Parse a stored bundle (canonical JSON) back into an AgentConfig."""
    config = resources_pb2.AgentConfig()
    json_format.Parse(canonical.decode("utf-8"), config, ignore_unknown_fields=True)
    return config


class Activation:
    """The activation service's operations."""

    def __init__(
        self,
        store: ActivationStore,
        events: OutboxEvents,
        table: RoutingTable,
        recorder: CallRecorder,
        *,
        check: CheckConfig = check_config,
    ) -> None:
        self._store = store
        self._events = events
        self._table = table
        self._recorder = recorder
        self._check = check

    # --- runtime ------------------------------------------------------------------------------

    async def deploy(self, agent: AgentName, bundle: VerifiedBundle, canonical: bytes) -> DeploymentView:
        """Store the bundle and make its version live if it is newer than the live one.

        Read, decide, then compare-and-set from the live version that was read: two statements in
        autocommit and no lock held in between. A concurrent deploy that moved live first makes
        the compare-and-set fail, and the deploy is decided again against the new live version.
        """
        name = str(agent)
        async with self._store.statements() as tx:
            for _ in range(_DEPLOY_RACES):
                row = await tx.agent_for_deploy(name, agent.tenant)
                deployed = None
                if row.live_version is not None and bundle.version_number <= row.live_version:
                    # Live only grows, so only a version at or below it can have been deployed before.
                    deployed = await tx.deployment(name, bundle.version_number)
                outcome = decide_deploy(bundle, row.live_version, None if deployed is None else deployed.bundle_sha256)
                if outcome is DeployOutcome.ALREADY_DEPLOYED:
                    assert deployed is not None and row.live_version is not None
                    return DeploymentView(
                        agent=name,
                        version=bundle.version,
                        bundle_sha256=deployed.bundle_sha256,
                        deploy_time=deployed.deploy_time,
                        live_version=version_name(name, row.live_version),
                    )
                previous = row.live_version
                deploy_time = datetime.now(UTC)
                event = self._events.version_live(
                    agent=name,
                    version=bundle.version,
                    content_sha256=bundle.content_sha256,
                    previous_version=None if previous is None else version_name(name, previous),
                    live_time=deploy_time,
                )
                if await tx.make_live(
                    name, bundle.version_number, bundle.content_sha256, canonical, previous, deploy_time, event
                ):
                    return DeploymentView(name, bundle.version, bundle.content_sha256, deploy_time, bundle.version)
        # Only a storm of concurrent deploys of one agent gets here: UNAVAILABLE, and the publisher retries.
        raise DeployContended(f"live version of {name} kept moving during {_DEPLOY_RACES} attempts to deploy")

    # --- lifecycle and numbers ----------------------------------------------------------------

    async def status(self, agent: AgentName) -> AgentStatusView:
        """The agent's status; an agent the runtime never heard of is a DRAFT with nothing live."""
        status = await self._store.status(str(agent))
        return status if status is not None else _never_seen(agent)

    async def assign_number(self, agent: AgentName, number: str, key: RequestKey | None) -> AgentStatusView:
        """Give the agent a number no other agent holds (idempotent for the same agent)."""

        async def change(tx: Tx) -> None:
            name = str(agent)
            await tx.ensure_agent(name, agent.tenant)
            await tx.lock_agent(name)
            owner = await tx.claim_number(number, name)
            if owner is None:
                # Released between our insert and our read: the next claim decides.
                owner = await tx.claim_number(number, name)
            if owner != name:
                same_tenant = owner is not None and AgentName.parse(owner).tenant == agent.tenant
                raise NumberTaken(number, owner if same_tenant else None)
            held = await tx.phone_numbers(name)
            if len(held) > MAX_PHONE_NUMBERS_PER_AGENT:
                raise PreconditionsUnmet(
                    f"{name} already holds {MAX_PHONE_NUMBERS_PER_AGENT} phone numbers",
                    [
                        Violation(
                            "PHONE_NUMBER_LIMIT",
                            name,
                            f"an agent holds at most {MAX_PHONE_NUMBERS_PER_AGENT} phone numbers",
                        )
                    ],
                )

        return await self._mutate(agent, key, change)

    async def release_number(self, agent: AgentName, number: str, key: RequestKey | None) -> AgentStatusView:
        """Take a number from the agent; an ACTIVE agent keeps at least one."""

        async def change(tx: Tx) -> None:
            name = str(agent)
            row = await tx.lock_agent(name)
            if row is None or not await tx.release_number(number, name):
                raise NumberNotHeld(name, number)
            if row.state is AgentState.ACTIVE and not await tx.phone_numbers(name):
                raise PreconditionsUnmet(
                    f"{number} is the last phone number of active agent {name}",
                    [
                        Violation(
                            "PHONE_NUMBER",
                            name,
                            "an ACTIVE agent keeps at least one phone number; deactivate it first "
                            "or assign another number",
                        )
                    ],
                )

        return await self._mutate(agent, key, change)

    async def activate(self, agent: AgentName, key: RequestKey | None) -> AgentStatusView:
        """DRAFT or INACTIVE -> ACTIVE once every launch condition holds (ACTIVE: no change)."""

        async def change(tx: Tx) -> None:
            name = str(agent)
            row = await tx.lock_agent(name)
            state = AgentState.DRAFT if row is None else row.state
            if activation_target(state) is None:
                return
            live = None if row is None or row.live_version is None else version_name(name, row.live_version)
            numbers = [] if row is None else await tx.phone_numbers(name)
            findings: Sequence[Finding] = ()
            if row is not None and row.live_sha256 is not None:
                canonical = await tx.bundle(row.live_sha256)
                assert canonical is not None  # deployments reference bundles
                findings = self._check(config_from_canonical(canonical))
            violations = launch_violations(name, live, numbers, findings)
            if violations:
                raise PreconditionsUnmet(f"{name} cannot be activated: {len(violations)} unmet", violations)
            assert row is not None and live is not None
            changed = await tx.set_state(name, state, AgentState.ACTIVE)
            await self._events.agent_activated(tx.con, agent=name, live_version=live, event_time=changed)

        return await self._mutate(agent, key, change)

    async def deactivate(self, agent: AgentName, key: RequestKey | None) -> AgentStatusView:
        """ACTIVE -> INACTIVE: no new calls; calls in progress finish on their version."""

        async def change(tx: Tx) -> None:
            name = str(agent)
            row = await tx.lock_agent(name)
            state = AgentState.DRAFT if row is None else row.state
            if deactivation_target(name, state) is None:
                return
            changed = await tx.set_state(name, state, AgentState.INACTIVE)
            await self._events.agent_deactivated(tx.con, agent=name, event_time=changed)

        return await self._mutate(agent, key, change)

    async def _mutate(
        self, agent: AgentName, key: RequestKey | None, change: Callable[[Tx], Awaitable[None]]
    ) -> AgentStatusView:
        async with self._store.transaction() as tx:
            if key is not None:
                await tx.lock_request(key.request_id)
                first = await tx.recall(key.request_id)
                if first is not None:
                    method, fingerprint, response = first
                    if (method, fingerprint) != (key.method, key.fingerprint):
                        raise RequestIdReused(str(key.request_id), method)
                    return AgentStatusView.from_json(response.decode("utf-8"))
            await change(tx)
            status = await tx.status(str(agent))
            if status is None:
                status = _never_seen(agent)
            if key is not None:
                await tx.remember(key.request_id, key.method, key.fingerprint, status.to_json().encode("utf-8"))
            return status

    # --- calls --------------------------------------------------------------------------------

    async def route_call(self, called_number: str, caller_number: str) -> CallRecord:
        """Pin the live version of the number's agent to a new call (no database read)."""
        route = self._table.lookup(called_number)
        if route is None:
            raise UnknownNumber(called_number)
        if not routes_calls(route.state) or route.live_version is None or route.bundle_sha256 is None:
            raise PreconditionsUnmet(
                f"{route.agent} is not active",
                [Violation("STATE", route.agent, f"the agent is {route.state.value}; it takes no calls")],
            )
        call = CallRecord(
            call_id=uuid.uuid4(),
            agent=route.agent,
            version=route.live_version,
            bundle_sha256=route.bundle_sha256,
            called_number=called_number,
            caller_number=caller_number,
            start_time=datetime.now(UTC),
        )
        await self._recorder.record(call)
        return call

    async def get_call(self, call_id: uuid.UUID) -> CallRecord | None:
        """A call by id."""
        return await self._store.get_call(call_id)

    async def end_call(self, call_id: uuid.UUID) -> CallRecord | None:
        """End a call (ending an ended call changes nothing)."""
        return await self._store.end_call(call_id)


def _never_seen(agent: AgentName) -> AgentStatusView:
    return AgentStatusView(str(agent), AgentState.DRAFT, None, (), (), None)
