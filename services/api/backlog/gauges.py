"""Gauges computed from PostgreSQL when /metrics is scraped: outbox backlog, pending per org.

Computed by the api (it owns the database view) at most every REFRESH_INTERVAL_S, however
many scrapers ask; every api replica reports the same values, so dashboards take `max`.
The per-organization gauge is bounded to the TOP_ORGS busiest organizations plus one
`organization_id="_other"` series for the rest: at most TOP_ORGS + 1 series.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import asyncpg

from services.api.backlog import repository
from services.api.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, PENDING_DELIVERIES

log = logging.getLogger("hookpost.api.metrics")

TOP_ORGS = 20
OTHER_ORGS = "_other"
REFRESH_INTERVAL_S = 5.0
QUERY_TIMEOUT_S = 2.0

_lock = asyncio.Lock()
_refreshed_at = float("-inf")


async def refresh(pool: asyncpg.Pool) -> None:
    """Bring the gauges up to date; on a database error keep the last values (and say so)."""
    global _refreshed_at
    async with _lock:
        if time.monotonic() - _refreshed_at < REFRESH_INTERVAL_S:
            return
        try:
            outbox, pending = await asyncio.wait_for(
                asyncio.gather(repository.outbox(pool), repository.pending_by_org(pool, TOP_ORGS)),
                QUERY_TIMEOUT_S,
            )
        except Exception as exc:
            log.warning("could not refresh the database gauges", extra={"error": repr(exc)})
            return
        _refreshed_at = time.monotonic()
    OUTBOX_BACKLOG.set(outbox.backlog)
    age = (datetime.now(UTC) - outbox.oldest).total_seconds() if outbox.oldest else 0.0
    OUTBOX_OLDEST_AGE.set(max(0.0, age))
    # Organizations that left the top (or have nothing pending) must lose their series.
    PENDING_DELIVERIES.clear()
    for organization_id, count in pending.top.items():
        PENDING_DELIVERIES.labels(organization_id=organization_id).set(count)
    PENDING_DELIVERIES.labels(organization_id=OTHER_ORGS).set(
        pending.total - sum(pending.top.values())
    )
