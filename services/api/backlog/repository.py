"""The SQL behind the api's database-derived gauges (read on a /metrics scrape)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

# Both read partial indexes (events_unpublished; deliveries_pending_by_org and
# deliveries_held): cheap.
_OUTBOX = """
SELECT count(*) AS backlog, min(created_at) AS oldest
FROM events WHERE published_at IS NULL
"""

# The `limit` organizations with the most deliveries still to be sent, and the total of all
# of them: what backpressure counts (PENDING and HELD, not PARKED; the dispatcher's _PREPARE
# in services/dispatcher/repository.py), one arm per status through its partial index.
_PENDING_BY_ORG = """
WITH per_org AS (
    SELECT organization_id, count(*) AS pending
    FROM (
        SELECT organization_id FROM deliveries WHERE status = 'PENDING'
        UNION ALL
        SELECT organization_id FROM deliveries WHERE status = 'HELD'
    ) AS open
    GROUP BY organization_id
)
SELECT organization_id, pending, sum(pending) OVER () AS total
FROM per_org
ORDER BY pending DESC, organization_id
LIMIT $1
"""


@dataclass(frozen=True)
class Outbox:
    backlog: int
    oldest: datetime | None


@dataclass(frozen=True)
class PendingByOrg:
    top: dict[str, int]
    total: int


async def outbox(pool: asyncpg.Pool) -> Outbox:
    row = await pool.fetchrow(_OUTBOX)
    return Outbox(backlog=row["backlog"], oldest=row["oldest"])


async def pending_by_org(pool: asyncpg.Pool, limit: int) -> PendingByOrg:
    rows = await pool.fetch(_PENDING_BY_ORG, limit)
    return PendingByOrg(
        top={row["organization_id"]: row["pending"] for row in rows},
        total=int(rows[0]["total"]) if rows else 0,
    )
