-- Config service: agents, their drafts, immutable numbered versions, publish requests, and the
-- idempotency records behind request_id. Configs are stored as serialised AgentConfig protobuf.

CREATE TABLE agents (
    tenant                text        NOT NULL,
    agent_id              text        NOT NULL,
    display_name          text        NOT NULL DEFAULT '',
    create_time           timestamptz NOT NULL,
    update_time           timestamptz NOT NULL,
    -- The per-agent version counter: the next version is latest_version_number + 1, assigned under
    -- this row's lock, so numbers are gap-free and strictly increasing.
    latest_version_number bigint      NOT NULL DEFAULT 0,
    latest_content_sha256 text        NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, agent_id)
);

CREATE TABLE drafts (
    tenant         text        NOT NULL,
    agent_id       text        NOT NULL,
    config         bytea       NOT NULL,
    content_sha256 text        NOT NULL,
    -- Bumped by every write; the etag is derived from it (compare-and-set).
    revision       bigint      NOT NULL,
    update_time    timestamptz NOT NULL,
    PRIMARY KEY (tenant, agent_id),
    FOREIGN KEY (tenant, agent_id) REFERENCES agents (tenant, agent_id)
);

CREATE TABLE versions (
    tenant           text        NOT NULL,
    agent_id         text        NOT NULL,
    number           bigint      NOT NULL CHECK (number >= 1),
    config           bytea       NOT NULL,
    content_sha256   text        NOT NULL,
    changed_sections text[]      NOT NULL,
    create_time      timestamptz NOT NULL,
    creator          text        NOT NULL,
    PRIMARY KEY (tenant, agent_id, number),
    FOREIGN KEY (tenant, agent_id) REFERENCES agents (tenant, agent_id)
);

CREATE TABLE publish_requests (
    job_id         uuid        PRIMARY KEY,
    tenant         text        NOT NULL,
    agent_id       text        NOT NULL,
    version_number bigint      NOT NULL,
    requester      text        NOT NULL,
    request_id     uuid,
    trace_id       text        NOT NULL,
    create_time    timestamptz NOT NULL,
    deadline       timestamptz NOT NULL,
    -- The PublishJob as submitted (state SUBMITTED), exactly as returned to the caller.
    job            bytea       NOT NULL,
    FOREIGN KEY (tenant, agent_id, version_number) REFERENCES versions (tenant, agent_id, number)
);
CREATE INDEX publish_requests_agent ON publish_requests (tenant, agent_id, create_time DESC);

-- request_id records of mutating RPCs: the first call's response, replayed to every repeat.
-- The row is inserted in the same transaction as the change it records, so a request either
-- happened with its record or not at all, and concurrent repeats wait for the first to finish.
CREATE TABLE idempotency (
    tenant         text        NOT NULL,
    request_id     uuid        NOT NULL,
    method         text        NOT NULL,
    request_sha256 text        NOT NULL,
    response       bytea,
    create_time    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, request_id)
);
