-- Every process running the delivery engine keeps a heartbeat here, so each knows how many
-- share an endpoint's concurrency ceiling and rate limit (libs/worker/membership.py).
CREATE TABLE IF NOT EXISTS workers (
    id          text PRIMARY KEY,
    service     text NOT NULL,
    host        text NOT NULL,
    pid         integer NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS workers_seen ON workers (seen_at);
