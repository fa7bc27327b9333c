-- Endpoints that vanish or keep failing are disabled, and their events parked, never lost
-- (libs/domain/endpoint_health.py).

-- PARKED: a delivery kept for an INACTIVE endpoint, not attempted until a recover call.
-- Written for both shapes of `deliveries` (0001's table, or 0007's partitioned one): every
-- CHECK on its status goes, whatever it was named, and one that knows PARKED replaces it.
DO $$
DECLARE
    found record;
BEGIN
    FOR found IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'deliveries'::regclass AND contype = 'c'
          AND pg_get_constraintdef(oid) LIKE '%status%'
          AND NOT coninhcount > 0
    LOOP
        EXECUTE format('ALTER TABLE deliveries DROP CONSTRAINT %I', found.conname);
    END LOOP;
END
$$;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'DEAD', 'PARKED'));

-- Recover finds an endpoint's PARKED, FAILED and DEAD deliveries since a time.
CREATE INDEX IF NOT EXISTS deliveries_recoverable ON deliveries (endpoint_id, created_at)
    WHERE status IN ('PARKED', 'FAILED', 'DEAD');

-- An endpoint whose attempts are failing: since when (its first failed attempt after its
-- last success) and how many of its deliveries in a row ended DEAD. A row exists only
-- while it fails (a success deletes it), so the engine's hot path writes nothing here for a
-- healthy endpoint. A table of its own, not columns of `endpoints`: an update there would
-- notify every engine's endpoint cache (0005) and contend with the api's row locks. No
-- foreign key either: the engine writes it while holding delivery locks, and a key check
-- on `endpoints` could deadlock with an endpoint's deletion; the api deletes the row with
-- its endpoint.
CREATE TABLE IF NOT EXISTS endpoint_failures (
    endpoint_id    text PRIMARY KEY,
    failing_since  timestamptz NOT NULL,
    dead_in_a_row  integer NOT NULL DEFAULT 0
);
