-- The history tables are partitioned by day, so that retention drops whole partitions
-- (libs/infra/db/partitions.py) instead of deleting rows one by one.
--
-- events, deliveries and delivery_attempts are keyed on the EVENT id's ULID day: an event id
-- is `evt_` + a ULID whose first 10 characters are its millisecond timestamp, so the ids of
-- one UTC day are one text range ['evt_<day 00:00>', 'evt_<next day 00:00>'). An event, its
-- deliveries and their attempts therefore share one day's partitions and leave together, and
-- the unique keys the pipeline relies on keep working because the partition key is part of
-- them: events (id), deliveries (event_id, endpoint_id), attempts (delivery_id,
-- attempt_number, event_id). Partitioning by created_at could not keep (event_id,
-- endpoint_id) unique (a delivery's created_at is not its event's) nor an AMQP producer's
-- retry of one event id on another day.
-- audit_log is keyed on created_at; idempotency keys (moved out of events: a unique key on a
-- partitioned table must contain the partition key) on the day they are reserved for.
-- Rows no day partition takes (an id that is not a ULID, a clock far ahead) land in each
-- table's DEFAULT partition; creating a day moves its rows out of the default first.
--
-- Foreign keys between the history tables are gone: a partition that another partitioned
-- table references cannot simply be dropped. Their integrity holds by construction (an event
-- and its deliveries and attempts live and leave in the same day), and what cascaded is now
-- deleted explicitly (erasure, an endpoint's DELETE). Foreign keys to organizations and
-- endpoints stay (ON DELETE CASCADE).

-- The 10-character ULID timestamp (Crockford base32 of Unix milliseconds) of `at`.
CREATE FUNCTION hookpost_ulid_prefix(at timestamptz) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    ms bigint := floor(extract(epoch FROM at) * 1000)::bigint;
    encoded text := '';
BEGIN
    FOR i IN 1..10 LOOP
        encoded := substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', (ms % 32)::int + 1, 1) || encoded;
        ms := ms / 32;
    END LOOP;
    RETURN encoded;
END
$$;

-- The UTC day of a prefixed ULID (`evt_01J…`); NULL when it is not one.
CREATE FUNCTION hookpost_ulid_day(id text) RETURNS date
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    encoded text := upper(substr(id, strpos(id, '_') + 1, 10));
    ms bigint := 0;
    digit int;
BEGIN
    IF length(encoded) < 10 THEN
        RETURN NULL;
    END IF;
    FOR i IN 1..10 LOOP
        digit := strpos('0123456789ABCDEFGHJKMNPQRSTVWXYZ', substr(encoded, i, 1)) - 1;
        IF digit < 0 THEN
            RETURN NULL;
        END IF;
        ms := ms * 32 + digit;
    END LOOP;
    RETURN (to_timestamp(ms / 1000.0) AT TIME ZONE 'UTC')::date;
END
$$;

-- Creates `<parent>_pYYYYMMDD` for `day` unless it exists; true when it created it. Rows of
-- that day already in the default partition are moved into it (CREATE … PARTITION OF would
-- refuse). The one place that knows each table's partition key and bounds.
CREATE FUNCTION hookpost_create_day_partition(parent text, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := parent || '_p' || to_char(day, 'YYYYMMDD');
    key text;
    lo text;
    hi text;
    in_default boolean;
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    IF parent IN ('events', 'deliveries', 'delivery_attempts') THEN
        key := CASE parent WHEN 'events' THEN 'id' ELSE 'event_id' END;
        lo := quote_literal('evt_' || hookpost_ulid_prefix(day::timestamp AT TIME ZONE 'UTC'));
        hi := quote_literal('evt_' || hookpost_ulid_prefix((day + 1)::timestamp AT TIME ZONE 'UTC'));
    ELSIF parent = 'audit_log' THEN
        key := 'created_at';
        lo := quote_literal(to_char(day, 'YYYY-MM-DD') || ' 00:00:00+00') || '::timestamptz';
        hi := quote_literal(to_char(day + 1, 'YYYY-MM-DD') || ' 00:00:00+00') || '::timestamptz';
    ELSIF parent = 'idempotency_keys' THEN
        key := 'day';
        lo := quote_literal(day::text) || '::date';
        hi := quote_literal((day + 1)::text) || '::date';
    ELSE
        RAISE EXCEPTION 'no day partitions for table %', parent;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I >= %s AND %I < %s)',
                   parent || '_default', key, lo, key, hi) INTO in_default;
    IF NOT in_default THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)',
                       name, parent, lo, hi);
    ELSE
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       name, parent);
        EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= %s AND %I < %s RETURNING *)'
                       ' INSERT INTO %I SELECT * FROM moved',
                       parent || '_default', key, lo, key, hi, name);
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                       parent, name, lo, hi);
    END IF;
    RETURN true;
END
$$;

-- 1. The old tables step aside, their indexes (and the constraints they back) renamed.
ALTER TABLE delivery_attempts RENAME TO delivery_attempts_pre0007;
ALTER TABLE deliveries RENAME TO deliveries_pre0007;
ALTER TABLE events RENAME TO events_pre0007;
ALTER TABLE audit_log RENAME TO audit_log_pre0007;
ALTER SEQUENCE audit_log_id_seq OWNED BY NONE;
DO $$
DECLARE
    index_name text;
BEGIN
    FOR index_name IN
        SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid IN ('delivery_attempts_pre0007'::regclass, 'deliveries_pre0007'::regclass,
                             'events_pre0007'::regclass, 'audit_log_pre0007'::regclass)
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', index_name, 'pre0007_' || index_name);
    END LOOP;
END
$$;

-- 2. The partitioned tables, with the names of constraints and indexes code relies on.
-- events keeps the columns of the table it replaces (0001's, 0003's trace_context), not its
-- keys: the idempotency key's UNIQUE moved to idempotency_keys below.
CREATE TABLE events (
    LIKE events_pre0007 INCLUDING DEFAULTS,
    CONSTRAINT events_organization_id_fkey FOREIGN KEY (organization_id)
        REFERENCES organizations (id) ON DELETE CASCADE,
    PRIMARY KEY (id)
) PARTITION BY RANGE (id);
CREATE INDEX events_unpublished ON events (created_at) WHERE published_at IS NULL;
CREATE INDEX events_undispatched ON events ((COALESCE(published_at, created_at)))
    WHERE dispatched_at IS NULL;
-- erasure and the organization's own lookups
CREATE INDEX events_by_org ON events (organization_id, created_at);

CREATE TABLE deliveries (
    id               text NOT NULL,
    event_id         text NOT NULL,
    endpoint_id      text NOT NULL CONSTRAINT deliveries_endpoint_id_fkey
                     REFERENCES endpoints (id) ON DELETE CASCADE,
    organization_id  text NOT NULL,
    status           text NOT NULL DEFAULT 'PENDING'
                     CONSTRAINT deliveries_status_check
                     CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'DEAD')),
    attempt_count    integer NOT NULL DEFAULT 0,
    schedule_start   integer NOT NULL DEFAULT 1,
    last_attempt_at  timestamptz,
    next_attempt_at  timestamptz DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- id first: the pipeline and the api look a delivery up by its id alone
    CONSTRAINT deliveries_pkey PRIMARY KEY (id, event_id),
    CONSTRAINT deliveries_event_id_endpoint_id_key UNIQUE (event_id, endpoint_id)
) PARTITION BY RANGE (event_id);
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, created_at DESC);
CREATE INDEX deliveries_pending_by_org ON deliveries (organization_id) WHERE status = 'PENDING';
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX deliveries_by_org ON deliveries (organization_id);

-- event_id: the partition key, the delivery's event (an attempt leaves with its event's day)
CREATE TABLE delivery_attempts (
    id                text NOT NULL,
    delivery_id       text NOT NULL,
    event_id          text NOT NULL,
    attempt_number    integer NOT NULL,
    attempted_at      timestamptz NOT NULL,
    duration_ms       integer NOT NULL,
    http_status       integer,
    error             text,
    response_excerpt  text,
    succeeded         boolean NOT NULL,
    CONSTRAINT delivery_attempts_pkey PRIMARY KEY (id, event_id),
    CONSTRAINT delivery_attempts_delivery_id_attempt_number_key
        UNIQUE (delivery_id, attempt_number, event_id)
) PARTITION BY RANGE (event_id);

-- An attempt goes with its delivery, as the foreign key's cascade did (an endpoint's DELETE,
-- its job's or agent's, an erasure). Dropped partitions fire no trigger.
CREATE FUNCTION hookpost_delete_attempts_of_deleted_deliveries() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM delivery_attempts a USING gone g
    WHERE a.event_id = g.event_id AND a.delivery_id = g.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_delete_attempts AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION hookpost_delete_attempts_of_deleted_deliveries();

CREATE TABLE audit_log (
    id               bigint NOT NULL DEFAULT nextval('audit_log_id_seq'),
    organization_id  text CONSTRAINT audit_log_organization_id_fkey
                     REFERENCES organizations (id) ON DELETE CASCADE,
    action           text NOT NULL,
    details          jsonb NOT NULL DEFAULT '{}',
    -- entries that must exist once per period (backpressure: one per org per hour, whose
    -- created_at is the start of that hour, so the period's row is found in one partition)
    dedup_key        text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_log_pkey PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;
CREATE INDEX audit_log_by_org ON audit_log (organization_id, created_at DESC);
CREATE UNIQUE INDEX audit_log_dedup ON audit_log (organization_id, action, dedup_key, created_at)
    WHERE dedup_key IS NOT NULL;

-- An Idempotency-Key is reserved for the UTC day of its request and the next one (two rows),
-- so a repeat within 24 hours (until the end of the next UTC day) meets the reservation of
-- its own day: uniqueness per (org, key, day) is enough, and old keys leave by partition.
CREATE TABLE idempotency_keys (
    organization_id  text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    idempotency_key  text NOT NULL,
    day              date NOT NULL,
    event_id         text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (organization_id, idempotency_key, day)
) PARTITION BY RANGE (day);

CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE TABLE deliveries_default PARTITION OF deliveries DEFAULT;
CREATE TABLE delivery_attempts_default PARTITION OF delivery_attempts DEFAULT;
CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;
CREATE TABLE idempotency_keys_default PARTITION OF idempotency_keys DEFAULT;

-- 3. A partition for every day the old rows name (up to a week ahead: later ones stay in the
-- default until their day is created) and for the coming week, then every row copied.
DO $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    day date;
    parent text;
BEGIN
    FOR day IN
        SELECT d FROM generate_series(today - 1, today + 7, interval '1 day') AS g (d)
        UNION
        SELECT DISTINCT hookpost_ulid_day(id) FROM events_pre0007 WHERE id LIKE 'evt\_%'
    LOOP
        CONTINUE WHEN day IS NULL OR day > today + 7;
        FOREACH parent IN ARRAY ARRAY['events', 'deliveries', 'delivery_attempts',
                                      'idempotency_keys', 'audit_log'] LOOP
            PERFORM hookpost_create_day_partition(parent, day);
        END LOOP;
        PERFORM hookpost_create_day_partition('idempotency_keys', day + 1);
    END LOOP;
    FOR day IN SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM audit_log_pre0007 LOOP
        CONTINUE WHEN day > today + 7;
        PERFORM hookpost_create_day_partition('audit_log', day);
    END LOOP;
END
$$;

INSERT INTO events (id, organization_id, type, data, idempotency_key, idempotency_fingerprint,
                    target_endpoint_id, target_delivery_id, created_at, published_at,
                    dispatched_at, trace_context)
SELECT id, organization_id, type, data, idempotency_key, idempotency_fingerprint,
       target_endpoint_id, target_delivery_id, created_at, published_at, dispatched_at,
       trace_context
FROM events_pre0007;

-- A key is remembered as if reserved on its event's day.
INSERT INTO idempotency_keys (organization_id, idempotency_key, day, event_id, created_at)
SELECT e.organization_id, e.idempotency_key, reserved.day, e.id, e.created_at
FROM events_pre0007 e
CROSS JOIN LATERAL (VALUES ((e.created_at AT TIME ZONE 'UTC')::date),
                           ((e.created_at AT TIME ZONE 'UTC')::date + 1)) AS reserved (day)
WHERE e.idempotency_key IS NOT NULL;

INSERT INTO deliveries (id, event_id, endpoint_id, organization_id, status, attempt_count,
                        schedule_start, last_attempt_at, next_attempt_at, created_at, updated_at)
SELECT id, event_id, endpoint_id, organization_id, status, attempt_count, schedule_start,
       last_attempt_at, next_attempt_at, created_at, updated_at
FROM deliveries_pre0007;

INSERT INTO delivery_attempts (id, delivery_id, event_id, attempt_number, attempted_at,
                               duration_ms, http_status, error, response_excerpt, succeeded)
SELECT a.id, a.delivery_id, d.event_id, a.attempt_number, a.attempted_at, a.duration_ms,
       a.http_status, a.error, a.response_excerpt, a.succeeded
FROM delivery_attempts_pre0007 a JOIN deliveries_pre0007 d ON d.id = a.delivery_id;

-- An hourly entry's created_at becomes its hour's start (see audit_log above).
INSERT INTO audit_log (id, organization_id, action, details, dedup_key, created_at, updated_at)
SELECT id, organization_id, action, details, dedup_key,
       CASE WHEN dedup_key ~ '^\d{4}-\d\d-\d\dT\d\d$'
            THEN (dedup_key || ':00:00+00')::timestamptz ELSE created_at END,
       updated_at
FROM audit_log_pre0007;

DROP TABLE delivery_attempts_pre0007;
DROP TABLE deliveries_pre0007;
DROP TABLE events_pre0007;
DROP TABLE audit_log_pre0007;

ANALYZE events;
ANALYZE deliveries;
ANALYZE delivery_attempts;
ANALYZE audit_log;
ANALYZE idempotency_keys;
