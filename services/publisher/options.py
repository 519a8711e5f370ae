"""Tuning of the publisher's pipeline (leases, retries, concurrency).

DESIGN.md fixes the shared settings (chassis.settings.Settings); these knobs are the publisher's
own, with production defaults and ``SPEAKO_PUBLISHER_*`` overrides for operators and tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chassis.settings import SettingsError, tunables_from_env

_PREFIX = "SPEAKO_PUBLISHER_"


@dataclass(frozen=True)
class PipelineOptions:
    """How hard and how long the publisher works on a job."""

    # Jobs one process drives at once, and request deliveries it holds unacked. More workers than
    # prefetched deliveries, so a delivery nearly always finds a free worker and is claimed in the
    # statement that accepts it (a worker is a coroutine holding no connection between steps).
    workers: int = 64
    prefetch: int = 32
    # A crashed replica's jobs are resumed by others this long after its last heartbeat.
    lease_s: float = 15.0
    heartbeat_s: float = 4.0
    # Idle workers look for claimable jobs (others' expired leases) this often.
    poll_interval_s: float = 1.0
    # Per-RPC deadlines, each further capped by the job deadline.
    version_timeout_s: float = 5.0
    deploy_attempt_timeout_s: float = 10.0
    # DeployBundle attempts per job, across replicas; the job deadline bounds them too.
    max_attempts: int = 20
    backoff_multiplier_s: float = 0.5
    backoff_max_s: float = 15.0
    # Less time than this before the deadline is not worth an attempt.
    min_attempt_s: float = 0.5
    # Connections of the process's pool: transactions are short and never span an RPC.
    db_pool_size: int = 10
    # How long handled delivery ids are kept for dedupe.
    processed_retention_s: float = 7 * 24 * 3600.0

    def __post_init__(self) -> None:
        # The lease must outlive any single RPC, or a slow attempt could overlap another replica's.
        if self.deploy_attempt_timeout_s >= self.lease_s or self.version_timeout_s >= self.lease_s:
            raise SettingsError("publisher RPC timeouts must be shorter than the job lease")
        if self.heartbeat_s >= self.lease_s:
            raise SettingsError("publisher heartbeat must be shorter than the job lease")
        if min(self.workers, self.prefetch, self.max_attempts, self.db_pool_size) < 1:
            raise SettingsError("publisher workers, prefetch, max_attempts and db_pool_size must be at least 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PipelineOptions:
        """Defaults overridden by SPEAKO_PUBLISHER_<FIELD> variables (e.g. SPEAKO_PUBLISHER_LEASE_S)."""
        return tunables_from_env(cls, _PREFIX, env)
