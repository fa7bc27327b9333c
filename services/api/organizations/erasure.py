"""Erasing one organization: every row of its data in every table, in one transaction, and
an audit entry that outlives it (`DELETE /api/v1/admin/organizations/{id}`,
`hookpost orgs erase ORG`).

The history tables are partitioned by day (migration 0007) and have no foreign keys between
them, so each is emptied of the organization explicitly (through its organization index)
instead of by cascade; the rest (tokens, endpoints, agents, jobs, export files) cascades
from the organization's row. Poison messages carry no organization column: those whose
message id is one of its events or deliveries, or whose body names it, go too.
"""

from __future__ import annotations

import json

import asyncpg

ERASED = "organization.erased"

# (what, statement): run in this order, each counted. $1 is the organization's id.
_STEPS: tuple[tuple[str, str], ...] = (
    (
        "poisonMessages",
        """DELETE FROM poison_messages p
        WHERE p.message_id IN (SELECT id FROM events WHERE organization_id = $1
                               UNION ALL SELECT id FROM deliveries WHERE organization_id = $1)
           OR position(convert_to($1, 'UTF8') IN p.body) > 0""",
    ),
    (
        "deliveryAttempts",
        """DELETE FROM delivery_attempts a USING deliveries d
        WHERE d.organization_id = $1 AND a.event_id = d.event_id AND a.delivery_id = d.id""",
    ),
    ("deliveries", "DELETE FROM deliveries WHERE organization_id = $1"),
    ("events", "DELETE FROM events WHERE organization_id = $1"),
    ("idempotencyKeys", "DELETE FROM idempotency_keys WHERE organization_id = $1"),
    ("auditEntries", "DELETE FROM audit_log WHERE organization_id = $1"),
    ("endpoints", "DELETE FROM endpoints WHERE organization_id = $1"),
    ("organizations", "DELETE FROM organizations WHERE id = $1"),
)

# Kept without an organization (its row is gone): who asked, and how much went.
_AUDIT = """
INSERT INTO audit_log (organization_id, action, details)
VALUES (NULL, $1, jsonb_build_object('organizationId', $2::text, 'requestedBy', $3::text,
                                     'erased', $4::text::jsonb))
"""


async def erase(conn: asyncpg.Connection, org_id: str, requested_by: str) -> dict[str, int] | None:
    """Erase `org_id` in the caller's transaction; rows erased per kind, or None when there
    is no such organization."""
    if await conn.fetchval("SELECT id FROM organizations WHERE id = $1 FOR UPDATE", org_id) is None:
        return None
    erased: dict[str, int] = {}
    for what, sql in _STEPS:
        status = await conn.execute(sql, org_id)
        erased[what] = int(status.split()[-1])
    await conn.execute(_AUDIT, ERASED, org_id, requested_by, json.dumps(erased))
    return erased
