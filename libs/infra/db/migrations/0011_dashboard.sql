-- The dashboard (/app): sign-in sessions, portal links, and the per-org delivery log's index.

-- An expiring, revocable link that opens one org's dashboard without its API token (for
-- embedding the delivery pages in the customer's own app). Only a SHA-256 of the link's token
-- is kept, as for API tokens.
CREATE TABLE IF NOT EXISTS dashboard_portal_links (
    id               text PRIMARY KEY,
    organization_id  text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    token_hash       bytea NOT NULL UNIQUE,
    -- the one origin allowed to frame the pages (CSP frame-ancestors); NULL: none may
    frame_origin     text,
    created_by       text NOT NULL CHECK (created_by IN ('admin', 'organization')),
    expires_at       timestamptz NOT NULL,
    revoked_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dashboard_portal_links_by_org
    ON dashboard_portal_links (organization_id, created_at DESC);

-- A signed-in browser. The cookie carries a random id; only its SHA-256 is kept. A session
-- opened by a portal link ends with the link (revoked or expired).
CREATE TABLE IF NOT EXISTS dashboard_sessions (
    id_hash          bytea PRIMARY KEY,
    organization_id  text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    csrf_token       text NOT NULL,
    portal_link_id   text REFERENCES dashboard_portal_links (id) ON DELETE CASCADE,
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dashboard_sessions_expiry ON dashboard_sessions (expires_at);

-- The org-wide delivery log pages by keyset (created_at, id) newest first, never OFFSET.
CREATE INDEX IF NOT EXISTS deliveries_by_org_created
    ON deliveries (organization_id, created_at DESC, id DESC);
