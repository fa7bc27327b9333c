-- hookpost: organizations, tokens, endpoints (every front door), events (the outbox),
-- deliveries and their attempts, the audit log.

CREATE TABLE organizations (
    id                  text PRIMARY KEY,
    name                text NOT NULL,
    plan                text NOT NULL CHECK (plan IN ('FREE', 'PRO', 'PRO_MAX', 'ENTERPRISE')),
    webhook_secret_enc  bytea,
    webhook_secret_masked text,
    export_format       text NOT NULL DEFAULT 'CSV',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Only a SHA-256 of each bearer token is kept.
CREATE TABLE api_tokens (
    token_hash       bytea PRIMARY KEY,
    organization_id  text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE endpoints (
    id                          text PRIMARY KEY,
    organization_id             text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind                        text NOT NULL,
    name                        text,
    url_enc                     bytea NOT NULL,       -- a URL may carry a token: always encrypted
    url_masked                  text NOT NULL,        -- what responses, logs and metrics show
    events                      text[] NOT NULL DEFAULT '{}',
    status                      text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'INACTIVE')),
    deactivated_reason          text,
    signature_scheme            text NOT NULL DEFAULT 'v1',
    secret_enc                  bytea,
    secret_masked               text,
    previous_secret_enc         bytea,
    previous_secret_expires_at  timestamptz,
    api_key_name                text,
    api_key_value_enc           bytea,
    additional_headers          jsonb NOT NULL DEFAULT '{}',
    config                      jsonb NOT NULL DEFAULT '{}',  -- kind-specific settings
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX endpoints_org_kind ON endpoints (organization_id, kind, created_at);
CREATE INDEX endpoints_active_by_org ON endpoints (organization_id) WHERE status = 'ACTIVE';

-- Events double as the outbox: published_at stays NULL until the broker confirmed it.
CREATE TABLE events (
    id                       text PRIMARY KEY,
    organization_id          text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    type                     text NOT NULL,
    data                     jsonb NOT NULL,
    idempotency_key          text,
    idempotency_fingerprint  text,
    target_endpoint_id       text,
    target_delivery_id       text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    published_at             timestamptz,
    dispatched_at            timestamptz,
    UNIQUE (organization_id, idempotency_key)
);
CREATE INDEX events_unpublished ON events (created_at) WHERE published_at IS NULL;

CREATE TABLE deliveries (
    id               text PRIMARY KEY,
    event_id         text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    endpoint_id      text NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    organization_id  text NOT NULL,
    status           text NOT NULL DEFAULT 'PENDING'
                     CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'DEAD')),
    attempt_count    integer NOT NULL DEFAULT 0,
    -- attempt number that opened the current schedule (a manual retry opens a new one)
    schedule_start   integer NOT NULL DEFAULT 1,
    last_attempt_at  timestamptz,
    next_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, created_at DESC);
CREATE INDEX deliveries_pending_by_org ON deliveries (organization_id) WHERE status = 'PENDING';

-- One row per HTTP attempt; its id is the envelope id / X-Webhook-Delivery of that attempt.
CREATE TABLE delivery_attempts (
    id                text PRIMARY KEY,
    delivery_id       text NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt_number    integer NOT NULL,
    attempted_at      timestamptz NOT NULL,
    duration_ms       integer NOT NULL,
    http_status       integer,
    error             text,
    response_excerpt  text,
    succeeded         boolean NOT NULL,
    UNIQUE (delivery_id, attempt_number)
);

CREATE TABLE audit_log (
    id               bigserial PRIMARY KEY,
    organization_id  text REFERENCES organizations (id) ON DELETE CASCADE,
    action           text NOT NULL,
    details          jsonb NOT NULL DEFAULT '{}',
    -- entries that must exist once per period (backpressure: one per org per hour)
    dedup_key        text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_by_org ON audit_log (organization_id, created_at DESC);
CREATE UNIQUE INDEX audit_log_dedup ON audit_log (organization_id, action, dedup_key)
    WHERE dedup_key IS NOT NULL;
