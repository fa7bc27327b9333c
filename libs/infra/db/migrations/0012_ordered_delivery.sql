-- Ordered delivery per endpoint (libs/delivery/ordering.py): an event may carry an ordering
-- key; an endpoint whose config says `orderedDelivery` gets the deliveries of one key one at
-- a time, in event id order. Only such deliveries carry the key, so every index below is
-- empty for unordered endpoints and for events without a key: the hot path writes nothing
-- more than before.

ALTER TABLE events ADD COLUMN IF NOT EXISTS ordering_key text;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS ordering_key text;

-- HELD: a delivery of an ordered endpoint waiting for the one before it (same key) to end;
-- not attempted, not re-driven, not counted by backpressure. 0009 left exactly one CHECK on
-- the status, named deliveries_status_check (on 0001's table or 0007's partitioned one): it
-- is replaced by one that knows every status.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check,
    ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'DEAD', 'PARKED', 'HELD'));

-- The unfinished deliveries of each (endpoint, key), in event order: is one in flight, which
-- one is next.
CREATE INDEX IF NOT EXISTS deliveries_ordered_open
    ON deliveries (endpoint_id, ordering_key, event_id)
    WHERE ordering_key IS NOT NULL AND status IN ('PENDING', 'HELD');
-- The HELD ones of an organization's key (a dispatched event releases its key on every
-- ordered endpoint), and the reconciler's backstop scan.
CREATE INDEX IF NOT EXISTS deliveries_held
    ON deliveries (organization_id, ordering_key) WHERE status = 'HELD';
-- An earlier event of the same key not dispatched yet holds the later ones back.
CREATE INDEX IF NOT EXISTS events_keyed_undispatched
    ON events (organization_id, ordering_key, id)
    WHERE dispatched_at IS NULL AND ordering_key IS NOT NULL;
