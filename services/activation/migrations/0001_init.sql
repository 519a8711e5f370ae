-- Activation: the runtime's view of agents, their deployed bundles, phone numbers and calls.

-- One row per agent the runtime has heard of (first deploy or first number assignment).
-- rev grows with every change RouteCall depends on (state, live version, numbers): replicas
-- compare revisions to find what their in-memory routing table is missing.
CREATE TABLE agents (
    name          text PRIMARY KEY,
    tenant        text NOT NULL,
    state         text NOT NULL DEFAULT 'DRAFT' CHECK (state IN ('DRAFT', 'ACTIVE', 'INACTIVE')),
    live_version  bigint CHECK (live_version > 0),
    live_sha256   text,
    rev           bigint NOT NULL DEFAULT 1,
    create_time   timestamptz NOT NULL DEFAULT now(),
    update_time   timestamptz NOT NULL DEFAULT now(),
    CHECK ((live_version IS NULL) = (live_sha256 IS NULL)),
    -- Only an agent with a live version can take calls.
    CHECK (state <> 'ACTIVE' OR live_version IS NOT NULL)
);

-- Content-addressed: the key is the sha256 of the canonical bytes stored.
CREATE TABLE bundles (
    sha256       text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    canonical    bytea NOT NULL,
    create_time  timestamptz NOT NULL DEFAULT now()
);

-- Every version that has been live, with the content it was deployed with.
CREATE TABLE deployments (
    agent          text NOT NULL REFERENCES agents (name),
    version        bigint NOT NULL CHECK (version > 0),
    bundle_sha256  text NOT NULL REFERENCES bundles (sha256),
    previous_version bigint,
    deploy_time    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent, version)
);

-- A number belongs to at most one agent across all tenants: the primary key says so.
CREATE TABLE phone_numbers (
    number       text PRIMARY KEY CHECK (number ~ '^\+[1-9][0-9]{1,14}$'),
    agent        text NOT NULL REFERENCES agents (name),
    assign_time  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX phone_numbers_agent ON phone_numbers (agent);

-- Calls with the version pinned at routing time. No foreign key: the hot path inserts in batches
-- and the agent always exists when a call is routed to it.
CREATE TABLE calls (
    id             uuid PRIMARY KEY,
    agent          text NOT NULL,
    version        bigint NOT NULL,
    bundle_sha256  text NOT NULL,
    called_number  text NOT NULL,
    caller_number  text NOT NULL,
    start_time     timestamptz NOT NULL,
    end_time       timestamptz
);
-- Active calls per agent and version (GetAgentStatus) without scanning ended calls.
CREATE INDEX calls_active ON calls (agent, version) WHERE end_time IS NULL;

-- request_id idempotency of the mutating ActivationService RPCs: the first answer, kept.
CREATE TABLE requests (
    request_id   uuid PRIMARY KEY,
    method       text NOT NULL,
    fingerprint  text NOT NULL,
    response     bytea NOT NULL,
    create_time  timestamptz NOT NULL DEFAULT now()
);
