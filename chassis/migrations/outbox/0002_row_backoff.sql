-- A row the broker refuses (e.g. unroutable) waits out its own backoff instead of being retried
-- at the head of every batch, where it would hold back the rows behind it.
ALTER TABLE outbox ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT '-infinity';
