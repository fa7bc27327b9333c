"""Days of delivered history for the *_cost benchmarks' scratch databases: one organization
with one destination, and per day events with one SUCCEEDED delivery each and its attempts.
Ids are ULIDs of their day (`evt_<day's prefix><n>`, migration 0007's encoder
hookpost_ulid_prefix), so each row lands in its day's partition."""

from __future__ import annotations

from datetime import UTC, date, datetime
from datetime import time as day_start


def midnight(day: date) -> datetime:
    return datetime.combine(day, day_start(0), UTC)


def owner(org: str, endpoint: str, event_type: str) -> str:
    """The organization and its one ACTIVE destination, subscribed to `event_type`."""
    return f"""
INSERT INTO organizations (id, name, plan) VALUES ('{org}', '{org}', 'PRO');
INSERT INTO endpoints (id, organization_id, kind, name, url_enc, url_masked, events, status,
                       secret_enc, secret_masked)
VALUES ('{endpoint}', '{org}', 'DESTINATION', '{endpoint}', '\\x00', 'https://x.test/',
        ARRAY['{event_type}'], 'ACTIVE', '\\x00', 'whsec_••••');
"""


def day(org: str, endpoint: str, event_type: str, *, attempts: int, keyed: bool) -> str:
    """One day ($1: its midnight) of $2 events, each delivered after `attempts` attempts.
    `keyed`: the attempts carry their event's id (the partition key from migration 0007 on)."""
    event_id = ("event_id, ", "'evt_' || u, ") if keyed else ("", "")
    return f"""
WITH ids AS (
    SELECT n, hookpost_ulid_prefix($1::timestamptz + n * interval '1 ms') || lpad(n::text, 16, '0')
        AS u
    FROM generate_series(1, $2) AS n
), e AS (
    INSERT INTO events (id, organization_id, type, data, created_at, published_at, dispatched_at)
    SELECT 'evt_' || u, '{org}', '{event_type}', '{{"n": 1}}', $1, $1, $1 FROM ids
), d AS (
    INSERT INTO deliveries (id, event_id, endpoint_id, organization_id, status, attempt_count,
                            created_at)
    SELECT 'del_' || u, 'evt_' || u, '{endpoint}', '{org}', 'SUCCEEDED', {attempts}, $1 FROM ids
)
INSERT INTO delivery_attempts (id, delivery_id, {event_id[0]}attempt_number, attempted_at,
                               duration_ms, http_status, succeeded)
SELECT 'att_' || u || k, 'del_' || u, {event_id[1]}k, $1, 20, 200, true
FROM ids CROSS JOIN generate_series(1, {attempts}) AS k
"""
