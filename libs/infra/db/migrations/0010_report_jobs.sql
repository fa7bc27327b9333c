-- Door F (seed 004, Mappa report jobs): a job, its report, and the org webhook secret's
-- rotation window. A job's own webhook is an endpoint row (kind REPORT_WEBHOOK, signed with
-- the org webhook secret) that the job's outcome event names as its target.

CREATE TABLE IF NOT EXISTS report_jobs (
    id                   text PRIMARY KEY,                  -- rjob_<ULID>
    organization_id      text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    source_url_enc       bytea NOT NULL,                    -- a media URL may carry a token
    output               jsonb NOT NULL,                    -- {template, …}
    target               jsonb NOT NULL,                    -- {strategy, …}
    status               text NOT NULL DEFAULT 'queued'
                         CHECK (status IN ('queued', 'completed', 'failed')),
    report_id            text,
    error                jsonb,                             -- {code, message} of a failed job
    webhook_endpoint_id  text REFERENCES endpoints (id) ON DELETE SET NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS report_jobs_by_org ON report_jobs (organization_id, created_at DESC);

CREATE TABLE IF NOT EXISTS reports (
    id               text PRIMARY KEY,                      -- rpt_<ULID>
    organization_id  text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    job_id           text NOT NULL UNIQUE REFERENCES report_jobs (id) ON DELETE CASCADE,
    markdown         text NOT NULL,
    extra            jsonb NOT NULL DEFAULT '{}',           -- the report's other fields
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Rotating the org webhook secret keeps the previous one signing until this expires: both
-- verify meanwhile (every delivery carries two v1 signatures).
ALTER TABLE organizations
    ADD COLUMN IF NOT EXISTS previous_webhook_secret_enc bytea,
    ADD COLUMN IF NOT EXISTS previous_webhook_secret_expires_at timestamptz;
