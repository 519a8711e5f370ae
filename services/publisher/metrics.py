"""The publisher's own figures on its metrics port: outcomes, deploy attempts, publish-to-live."""

from __future__ import annotations

from chassis.metrics import ServiceMetrics
from services.publisher.domain.job import Job, JobState

# Publish-to-live spans tens of milliseconds (one at a time) to the job deadline (minutes).
PUBLISH_TO_LIVE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class PipelineMetrics:
    """Counted as jobs end and attempts are made (by whichever replica does the work)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.jobs = metrics.counter(
            "speako_publish_jobs_total",
            "Publish jobs that reached a final state, by state and failure reason (empty unless FAILED).",
            ("state", "reason"),
        )
        self.deploy_attempts = metrics.counter(
            "speako_deploy_attempts_total",
            "DeployBundle attempts by outcome: OK or the gRPC status code of the failure.",
            ("outcome",),
        )
        self.publish_to_live = metrics.histogram(
            "speako_publish_to_live_seconds",
            "From PublishDraft creating the job to its PUBLISHED state being committed.",
            buckets=PUBLISH_TO_LIVE_BUCKETS,
        )

    def finished(self, job: Job) -> None:
        """Count a job that has just been committed in its final state."""
        self.jobs.labels(job.state.value, job.error.reason.value if job.error else "").inc()
        if job.state is JobState.PUBLISHED:
            self.publish_to_live.observe(max(0.0, (job.update_time - job.create_time).total_seconds()))

    def deploy_attempt(self, outcome: str) -> None:
        """Count one DeployBundle call by its outcome."""
        self.deploy_attempts.labels(outcome).inc()
