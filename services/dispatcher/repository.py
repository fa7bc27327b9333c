"""Every SQL statement the dispatcher runs (and nothing else talks to Postgres for it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from libs.common.broker.messages import EventMessage

BACKPRESSURE_ACTION = "events.dropped.backpressure"

# (a) + (b) + (c) in one round trip. The INSERT's row is invisible to the outer SELECT (one
# snapshot per statement), so `dispatched_at` is NULL for a new event and the stored value
# for a known one. No row at all means the organization does not exist.
_PREPARE = """
WITH org AS (
    SELECT id, plan FROM organizations WHERE id = $2
), inserted AS (
    INSERT INTO events (id, organization_id, type, data, target_endpoint_id,
                        target_delivery_id, created_at, published_at)
    SELECT $1, org.id, $3, $4, $5, $6, $7, now() FROM org
    ON CONFLICT (id) DO NOTHING
    RETURNING id
)
SELECT
    org.plan,
    existing.organization_id AS stored_organization_id,
    existing.dispatched_at,
    (SELECT count(*) FROM (
        SELECT 1 FROM deliveries d
        WHERE d.organization_id = $2 AND d.status = 'PENDING'
        LIMIT $8 + 1
    ) AS pending) AS pending,
    CASE WHEN $5::text IS NULL THEN ARRAY(
        SELECT e.id FROM endpoints e
        WHERE e.organization_id = $2 AND e.status = 'ACTIVE' AND $3 = ANY (e.events)
        ORDER BY e.id
    ) ELSE ARRAY(
        SELECT e.id FROM endpoints e WHERE e.id = $5 AND e.organization_id = $2
    ) END AS endpoint_ids,
    (SELECT count(*) FROM inserted) AS inserted
FROM org
LEFT JOIN events existing ON existing.id = $1
"""

# (d): every delivery in one statement; the second half returns deliveries an earlier,
# interrupted run inserted but never sent (the new rows are not visible to it: same snapshot).
_INSERT_DELIVERIES = """
WITH inserted AS (
    INSERT INTO deliveries (id, event_id, endpoint_id, organization_id)
    SELECT new.id, $1, new.endpoint_id, $2
    FROM unnest($3::text[], $4::text[]) AS new (id, endpoint_id)
    ON CONFLICT (event_id, endpoint_id) DO NOTHING
    RETURNING id, endpoint_id
)
SELECT id, endpoint_id FROM inserted
UNION ALL
SELECT id, endpoint_id FROM deliveries
WHERE event_id = $1 AND status = 'PENDING' AND attempt_count = 0
"""

_LOCK_EVENT = "SELECT dispatched_at FROM events WHERE id = $1 FOR UPDATE"

_MARK_DISPATCHED = "UPDATE events SET dispatched_at = now() WHERE id = $1 AND dispatched_at IS NULL"

# Count a dropped event once: only the run that marks it dispatched increments the entry.
_DROP = """
WITH marked AS (
    UPDATE events SET dispatched_at = now()
    WHERE id = $1 AND dispatched_at IS NULL
    RETURNING organization_id
)
INSERT INTO audit_log (organization_id, action, details, dedup_key)
SELECT organization_id, $2, jsonb_build_object('dropped', 1, 'hour', $3::text), $3 FROM marked
ON CONFLICT (organization_id, action, dedup_key) WHERE dedup_key IS NOT NULL
DO UPDATE SET
    details = jsonb_set(
        audit_log.details, '{dropped}',
        to_jsonb(COALESCE((audit_log.details ->> 'dropped')::bigint, 0) + 1)
    ),
    updated_at = now()
RETURNING (details ->> 'dropped')::bigint
"""


@dataclass(frozen=True)
class EventContext:
    plan: str
    stored_organization_id: str | None  # None when this run inserted the event
    dispatched_at: datetime | None
    pending: int  # capped at limit + 1
    endpoint_ids: list[str]


@dataclass(frozen=True)
class PendingDelivery:
    id: str
    endpoint_id: str


class DispatcherRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def prepare(self, event: EventMessage, pending_limit: int) -> EventContext | None:
        """Store the event if it is new; None when its organization does not exist."""
        row = await self._pool.fetchrow(
            _PREPARE,
            event.id,
            event.organization_id,
            event.type,
            event.data,
            event.target_endpoint_id,
            event.target_delivery_id,
            event.created_at,
            pending_limit,
        )
        if row is None:
            return None
        return EventContext(
            plan=row["plan"],
            stored_organization_id=row["stored_organization_id"],
            dispatched_at=row["dispatched_at"],
            pending=row["pending"],
            endpoint_ids=list(row["endpoint_ids"]),
        )

    async def drop(self, event_id: str, hour: str) -> int | None:
        """Mark a dropped event dispatched and count it; the hour's total, None if counted."""
        return await self._pool.fetchval(_DROP, event_id, BACKPRESSURE_ACTION, hour)

    def dispatch_transaction(self, event_id: str) -> DispatchTransaction:
        return DispatchTransaction(self._pool, event_id)


class DispatchTransaction:
    """Holds the event's row lock from "is it dispatched?" to "it is dispatched".

    Two copies of one event message (a producer's retry, a redelivery) can be handled at
    the same moment; the lock makes the second wait and then see `dispatched_at` set, so a
    delivery task is never published twice for one message pair.
    """

    def __init__(self, pool: asyncpg.Pool, event_id: str) -> None:
        self._pool = pool
        self._event_id = event_id
        self._conn: asyncpg.Connection | None = None
        self._tx: asyncpg.transaction.Transaction | None = None

    async def __aenter__(self) -> DispatchTransaction:
        self._conn = await self._pool.acquire()
        try:
            self._tx = self._conn.transaction()
            await self._tx.start()
        except BaseException:
            await self._pool.release(self._conn)
            raise
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._conn is not None and self._tx is not None
        try:
            if exc_type is None:
                await self._tx.commit()
            else:
                await self._tx.rollback()
        finally:
            await self._pool.release(self._conn)

    async def already_dispatched(self) -> bool:
        assert self._conn is not None
        return await self._conn.fetchval(_LOCK_EVENT, self._event_id) is not None

    async def insert_deliveries(
        self, organization_id: str, delivery_ids: list[str], endpoint_ids: list[str]
    ) -> list[PendingDelivery]:
        assert self._conn is not None
        rows = await self._conn.fetch(
            _INSERT_DELIVERIES, self._event_id, organization_id, delivery_ids, endpoint_ids
        )
        return [PendingDelivery(row["id"], row["endpoint_id"]) for row in rows]

    async def mark_dispatched(self) -> None:
        assert self._conn is not None
        await self._conn.execute(_MARK_DISPATCHED, self._event_id)
