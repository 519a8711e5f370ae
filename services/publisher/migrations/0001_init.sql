-- The publisher's jobs: the row, not the broker delivery, drives the work. A delivery is acked
-- once its job row is committed; workers on any replica then claim the row under a lease.
CREATE TABLE jobs (
    name             text        PRIMARY KEY,
    agent            text        NOT NULL,
    version          text        NOT NULL,
    -- sha256 the bundle must have ('' when the request carried none: the version's own is used).
    content_sha256   text        NOT NULL DEFAULT '',
    state            text        NOT NULL
        CHECK (state IN ('SUBMITTED', 'PROCESSING', 'PUBLISHED', 'FAILED', 'SUPERSEDED')),
    error_reason     text
        CHECK (error_reason IS NULL OR error_reason IN ('INVALID_CONFIG', 'DEPLOY_UNAVAILABLE', 'TIMEOUT', 'INTERNAL')),
    error_message    text        NOT NULL DEFAULT '',
    error_field      text        NOT NULL DEFAULT '',
    -- DeployBundle attempts made, across every replica that worked the job.
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    create_time      timestamptz NOT NULL,
    update_time      timestamptz NOT NULL,
    deadline         timestamptz NOT NULL,
    changed_sections text[]      NOT NULL DEFAULT '{}',
    requester        text        NOT NULL DEFAULT '',
    trace_id         text        NOT NULL DEFAULT '',
    -- W3C headers of the request delivery, so the worker's spans join the publish trace.
    trace_context    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- Sequence of the last JobStateChanged (1 = config's SUBMITTED event).
    sequence         bigint      NOT NULL CHECK (sequence >= 1),
    -- The replica working the job and until when; an expired lease may be taken by anyone.
    lease_owner      text,
    lease_expires    timestamptz,
    received_time    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((state = 'FAILED') = (error_reason IS NOT NULL)),
    CHECK (state IN ('SUBMITTED', 'PROCESSING') OR lease_owner IS NULL)
);

-- Workers and the sweeper scan only unfinished jobs.
CREATE INDEX jobs_active_idx ON jobs (create_time) WHERE state IN ('SUBMITTED', 'PROCESSING');

-- Deliveries already handled (the broker redelivers after a crash between commit and ack).
CREATE TABLE processed_messages (
    message_id   text        PRIMARY KEY,
    job_name     text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX processed_messages_age_idx ON processed_messages (processed_at);
