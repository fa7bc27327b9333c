"""History rows of given days, inserted straight into PostgreSQL (the retention tests').

Ids are ULIDs minted at the day's hours, so each row belongs to the day partition its id
names; `attempt_event_ids=False` writes attempts as the schema before migration 0007 had
them (no event_id column).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
from ulid import ULID

ENDPOINT_SQL = """
INSERT INTO endpoints (id, organization_id, kind, name, url_enc, url_masked, events, status,
                       secret_enc, secret_masked)
VALUES ($1, $2, 'DESTINATION', 'retention', '\\x00', 'https://x.test/',
        ARRAY['mapping.completed'], 'ACTIVE', '\\x00', 'whsec_••••')
"""


def ulid_at(prefix: str, at: datetime) -> str:
    return f"{prefix}_{ULID.from_datetime(at)}"


def noon(day: date) -> datetime:
    return datetime.combine(day, time(12), UTC)


async def make_org(conn: asyncpg.Connection, org_id: str) -> str:
    """An organization with one endpoint; returns the endpoint's id."""
    await conn.execute("INSERT INTO organizations (id, name, plan) VALUES ($1, $1, 'PRO')", org_id)
    endpoint_id = f"dest_{org_id}"
    await conn.execute(ENDPOINT_SQL, endpoint_id, org_id)
    await conn.execute(
        "INSERT INTO api_tokens (token_hash, organization_id) VALUES ($1, $2)",
        org_id.encode(),
        org_id,
    )
    return endpoint_id


@dataclass
class DayRows:
    events: list[str] = field(default_factory=list)
    deliveries: list[str] = field(default_factory=list)


async def insert_day(
    conn: asyncpg.Connection,
    org_id: str,
    endpoint_id: str,
    day: date,
    count: int,
    *,
    attempt_event_ids: bool = True,
    status: str = "SUCCEEDED",
) -> DayRows:
    """`count` events of `day`, each with one delivery, two attempts and an audit entry."""
    rows = DayRows()
    events, deliveries, attempts, audits = [], [], [], []
    for n in range(count):
        at = noon(day) + timedelta(seconds=n)
        event_id, delivery_id = ulid_at("evt", at), ulid_at("del", at)
        rows.events.append(event_id)
        rows.deliveries.append(delivery_id)
        events.append((event_id, org_id, "mapping.completed", f'{{"n": {n}}}', at, at, at))
        deliveries.append((delivery_id, event_id, endpoint_id, org_id, status, 2, at, at))
        for number in (1, 2):
            attempt = (ulid_at("del", at), delivery_id, number, at, 10, 500 + number)
            attempts.append((*attempt, event_id) if attempt_event_ids else attempt)
        audits.append((org_id, "test.entry", f'{{"n": {n}}}', at))
    await conn.executemany(
        "INSERT INTO events (id, organization_id, type, data, created_at, published_at,"
        " dispatched_at) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)",
        events,
    )
    await conn.executemany(
        "INSERT INTO deliveries (id, event_id, endpoint_id, organization_id, status,"
        " attempt_count, created_at, last_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        deliveries,
    )
    columns = "id, delivery_id, attempt_number, attempted_at, duration_ms, http_status"
    if attempt_event_ids:
        await conn.executemany(
            f"INSERT INTO delivery_attempts ({columns}, event_id, succeeded)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, false)",
            attempts,
        )
    else:
        await conn.executemany(
            f"INSERT INTO delivery_attempts ({columns}, succeeded)"
            " VALUES ($1, $2, $3, $4, $5, $6, false)",
            attempts,
        )
    await conn.executemany(
        "INSERT INTO audit_log (organization_id, action, details, created_at)"
        " VALUES ($1, $2, $3::jsonb, $4)",
        audits,
    )
    return rows


# Every table with an organization_id column, found in the catalog: a table added later is
# covered without editing this test.
_ORG_TABLES = """
SELECT c.table_name FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = 'public' AND c.column_name = 'organization_id'
  AND t.table_type = 'BASE TABLE' AND c.table_name NOT LIKE '%\\_p________'
  AND c.table_name NOT LIKE '%\\_default'
ORDER BY 1
"""


async def rows_of(conn: asyncpg.Connection, org_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every row the organization owns, per table (attempts and poison through its ids)."""
    found = {}
    for (table,) in await conn.fetch(_ORG_TABLES):
        found[table] = [
            dict(r)
            for r in await conn.fetch(
                f"SELECT * FROM {table} WHERE organization_id = $1 ORDER BY 1, 2", org_id
            )
        ]
    found["organizations"] = [
        dict(r) for r in await conn.fetch("SELECT * FROM organizations WHERE id = $1", org_id)
    ]
    found["delivery_attempts"] = [
        dict(r)
        for r in await conn.fetch(
            "SELECT a.* FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id"
            " WHERE d.organization_id = $1 ORDER BY a.id",
            org_id,
        )
    ]
    found["poison_messages"] = [
        dict(r)
        for r in await conn.fetch(
            "SELECT * FROM poison_messages WHERE position(convert_to($1, 'UTF8') IN body) > 0"
            " ORDER BY id",
            org_id,
        )
    ]
    return found
