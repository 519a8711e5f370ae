"""Broker adapter of the config service: publish events written through the outbox."""

from __future__ import annotations

import uuid

from chassis import broker, outbox
from speako.config.v1 import resources_pb2
from speako.events.v1 import events_pb2

JOB_SUBMITTED = "job.submitted"
# The first event of every job; the publisher's transitions continue from 2.
SUBMITTED_SEQUENCE = 1


def _message_id(job_name: str, routing_key: str) -> str:
    # Derived from the job, so the same job can never produce two different messages of one kind.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"speako:{job_name}#{routing_key}"))


class PublishEvents:
    """The messages announcing a submitted job, written in the caller's transaction."""

    @staticmethod
    def job_submitted_messages(job: resources_pb2.PublishJob, content_sha256: str) -> list[outbox.Outgoing]:
        """publish.requested (work for the publisher) and job.submitted (for watchers)."""
        return [
            outbox.Outgoing.of(
                exchange=broker.PUBLISH_EXCHANGE,
                routing_key=broker.PUBLISH_REQUESTED,
                message=events_pb2.PublishRequested(job=job, content_sha256=content_sha256),
                message_id=_message_id(job.name, broker.PUBLISH_REQUESTED),
            ),
            outbox.Outgoing.of(
                exchange=broker.EVENTS_EXCHANGE,
                routing_key=JOB_SUBMITTED,
                message=events_pb2.JobStateChanged(job=job, sequence=SUBMITTED_SEQUENCE, event_time=job.create_time),
                message_id=_message_id(job.name, JOB_SUBMITTED),
            ),
        ]
