-- PostgreSQL re-drives what the broker loses (services/dispatcher/reconciler.py), and keeps
-- what it dead-letters (libs/worker/poison.py).

-- A delivery is due from its creation: a first attempt the broker lost is overdue like a
-- retry it lost. (A delivery with no attempt left stays due until its dead letter marks it.)
ALTER TABLE deliveries ALTER COLUMN next_attempt_at SET DEFAULT now();
UPDATE deliveries SET next_attempt_at = COALESCE(last_attempt_at, created_at)
    WHERE status = 'PENDING' AND next_attempt_at IS NULL;
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at) WHERE status = 'PENDING';

-- Events not dispatched yet, by when they last left for the broker (published or re-driven;
-- when they were stored, if they never left).
CREATE INDEX IF NOT EXISTS events_undispatched ON events ((COALESCE(published_at, created_at)))
    WHERE dispatched_at IS NULL;

-- Messages a queue dead-lettered that were not a delivery's normal end: kept to be looked
-- at and replayed (`hookpost poison`), never dropped.
CREATE TABLE IF NOT EXISTS poison_messages (
    id            bigserial PRIMARY KEY,
    queue         text NOT NULL,         -- the dead-letter queue it was taken from
    reason        text,                  -- x-death: rejected, delivery_limit, …
    source_queue  text,                  -- the queue that dead-lettered it
    exchange      text NOT NULL,         -- where it was first published (replay goes there)
    routing_key   text NOT NULL,
    message_id    text,                  -- an event's or a delivery's id, when it has one
    headers       jsonb NOT NULL DEFAULT '{}',
    body          bytea NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    replayed_at   timestamptz
);
CREATE INDEX IF NOT EXISTS poison_waiting ON poison_messages (received_at)
    WHERE replayed_at IS NULL;
CREATE INDEX IF NOT EXISTS poison_waiting_by_message ON poison_messages (message_id)
    WHERE replayed_at IS NULL;
