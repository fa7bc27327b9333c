-- The producer side of three front doors: mapping jobs (seed 004), agents with their
-- results sinks (seed 003) and export files (seed 000). Their endpoints stay rows of the one
-- `endpoints` table; these columns say which job or agent an endpoint belongs to.

CREATE TABLE agents (
    id               text PRIMARY KEY,                      -- agt_<ULID>
    organization_id  text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             text NOT NULL,
    workspace_id     text NOT NULL,                         -- ws_<ULID>, in sink payloads
    status           text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'INACTIVE')),
    -- {"data_sinks": {"auto_push_on_job_complete": bool, "retry_failed_push": 0..3}}
    rules            jsonb NOT NULL DEFAULT
        '{"data_sinks": {"auto_push_on_job_complete": false, "retry_failed_push": 2}}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_by_org ON agents (organization_id, created_at);

CREATE TABLE mapping_jobs (
    id               text PRIMARY KEY,                      -- job_<ULID>
    organization_id  text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    agent_id         text REFERENCES agents (id) ON DELETE SET NULL,
    status           text NOT NULL DEFAULT 'RUNNING'
                     CHECK (status IN ('RUNNING', 'COMPLETED', 'FAILED')),
    stats            jsonb,
    results          jsonb,                                 -- what agent sinks push
    error            jsonb,                                 -- {code, message} of a FAILED job
    completed_at     timestamptz,
    failed_at        timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mapping_jobs_by_org ON mapping_jobs (organization_id, created_at DESC);

CREATE TABLE export_files (
    id               text PRIMARY KEY,                      -- exp_<ULID>
    organization_id  text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    mapping_job_id   text NOT NULL REFERENCES mapping_jobs (id) ON DELETE CASCADE,
    format           text NOT NULL CHECK (format IN ('CSV', 'JSON', 'XLSX')),
    content          bytea NOT NULL,
    file_size        bigint NOT NULL,
    row_count        integer NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX export_files_by_job ON export_files (mapping_job_id, created_at DESC);

-- A JOB_WEBHOOK endpoint receives only its own job's events; an AGENT_SINK endpoint only
-- the completions of its agent's jobs (the dispatcher's matching rule reads these).
ALTER TABLE endpoints
    ADD COLUMN mapping_job_id text REFERENCES mapping_jobs (id) ON DELETE CASCADE,
    ADD COLUMN agent_id text REFERENCES agents (id) ON DELETE CASCADE;
CREATE INDEX endpoints_by_job ON endpoints (mapping_job_id) WHERE mapping_job_id IS NOT NULL;
CREATE INDEX endpoints_by_agent ON endpoints (agent_id) WHERE agent_id IS NOT NULL;
