-- The notifier's read model of publish jobs, its durable feed, and the Notification Center.

-- One row: the feed's identity, the last position handed out and the last position pruned.
-- Positions are allocated by updating this row, whose lock is held until commit, so feed rows
-- become visible in position order and a reader of "position > last" never skips one.
CREATE TABLE feed_state (
    id             smallint PRIMARY KEY CHECK (id = 1),
    epoch          text     NOT NULL,
    last_position  bigint   NOT NULL,
    pruned_through bigint   NOT NULL
);
INSERT INTO feed_state (id, epoch, last_position, pruned_through)
VALUES (1, substr(md5(random()::text || clock_timestamp()::text), 1, 16), 0, 0);

-- Every accepted change, in order; the position is the resume token.
CREATE TABLE feed (
    position    bigint      PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('job', 'notification', 'notice')),
    tenant      text,                   -- tenants/{t}; NULL for maintenance notices (every tenant)
    agent       text,                   -- tenants/{t}/agents/{a} for job entries
    subject     text        NOT NULL,   -- job, notification or notice name
    payload     bytea       NOT NULL,   -- PublishJob, Notification or MaintenanceNotice
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feed_tenant_position ON feed (tenant, position) WHERE kind = 'job';
CREATE INDEX feed_agent_position ON feed (agent, position) WHERE kind = 'job';
CREATE INDEX feed_created_at ON feed (created_at);

-- The latest accepted state of each job.
CREATE TABLE jobs (
    name         text        PRIMARY KEY,
    tenant       text        NOT NULL,
    agent        text        NOT NULL,
    state        smallint    NOT NULL,
    sequence     bigint      NOT NULL,
    create_time  timestamptz NOT NULL,
    update_time  timestamptz NOT NULL,
    job          bytea       NOT NULL,
    position     bigint      NOT NULL
);
CREATE INDEX jobs_tenant_newest ON jobs (tenant, create_time DESC, name DESC);
CREATE INDEX jobs_agent_newest ON jobs (agent, create_time DESC, name DESC);

-- Broker message ids already applied (dedupe under redelivery).
CREATE TABLE processed_messages (
    message_id   text        PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_messages_age ON processed_messages (processed_at);

-- System notifications: at most one per failed job.
CREATE TABLE notifications (
    id               uuid        PRIMARY KEY,
    tenant           text        NOT NULL,
    publish_job      text        NOT NULL UNIQUE,
    agent            text        NOT NULL,
    version          text        NOT NULL,
    title            text        NOT NULL,
    message          text        NOT NULL,
    error            bytea       NOT NULL,   -- PublishError
    changed_sections text[]      NOT NULL,
    create_time      timestamptz NOT NULL,
    read_time        timestamptz
);
CREATE INDEX notifications_tenant_newest ON notifications (tenant, create_time DESC, id DESC);

-- Maintenance notices, shown to every tenant while current; read state is per tenant.
CREATE TABLE notices (
    id          uuid        PRIMARY KEY,
    title       text        NOT NULL,
    message     text        NOT NULL,
    start_time  timestamptz NOT NULL,
    end_time    timestamptz NOT NULL,
    create_time timestamptz NOT NULL,
    creator     text        NOT NULL,
    request_id  uuid        UNIQUE
);
CREATE INDEX notices_window ON notices (end_time, start_time);

CREATE TABLE notice_reads (
    tenant    text        NOT NULL,
    notice_id uuid        NOT NULL REFERENCES notices (id),
    read_time timestamptz NOT NULL,
    PRIMARY KEY (tenant, notice_id)
);
