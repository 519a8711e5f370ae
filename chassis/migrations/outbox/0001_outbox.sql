-- Messages written in the same transaction as the change they announce; the relay publishes
-- them with confirms and deletes each row only after the broker confirmed it.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    message_id   uuid        NOT NULL UNIQUE,
    exchange     text        NOT NULL,
    routing_key  text        NOT NULL,
    message_type text        NOT NULL,
    body         bytea       NOT NULL,
    -- W3C trace context of the transaction that wrote the row.
    headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text
);
