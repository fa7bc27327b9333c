"""Every SQL statement the dispatcher runs (and nothing else talks to Postgres for it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from libs.common.broker.messages import EventMessage

BACKPRESSURE_ACTION = "events.dropped.backpressure"

# (a) + (b) + (c), and the event's lock, in one round trip. The INSERT's row is invisible to
# the outer SELECT (one snapshot per statement), so `dispatched_at` is NULL for a new event and
# the stored value for a known one. No row at all means the organization does not exist (and
# no lock was taken: the select list, which takes it, is evaluated once per returned row).
# The snapshot predates a wait for the lock, so `dispatched_at` may be stale here: the
# deliveries statement, run afterwards under the lock with a fresh snapshot, has the last word.
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
        LEFT JOIN agents a ON a.id = e.agent_id
        WHERE e.organization_id = $2 AND e.status = 'ACTIVE' AND $3 = ANY (e.events)
          -- a per-job webhook hears only its own job
          AND (e.mapping_job_id IS NULL OR e.mapping_job_id = $4::jsonb ->> 'mappingJobId')
          -- an agent sink hears completions of its agent's jobs, when the agent's rules
          -- opted in to outbound push and the plan still includes sinks
          AND (e.kind <> 'AGENT_SINK' OR (
              org.plan IN ('PRO_MAX', 'ENTERPRISE')
              AND a.status = 'ACTIVE'
              AND COALESCE((a.rules #>> '{data_sinks,auto_push_on_job_complete}')::boolean, false)
              AND EXISTS (
                  SELECT 1 FROM mapping_jobs j
                  WHERE j.id = $4::jsonb ->> 'mappingJobId'
                    AND j.organization_id = $2 AND j.agent_id = e.agent_id
              )
          ))
        ORDER BY e.id
    ) ELSE ARRAY(
        SELECT e.id FROM endpoints e WHERE e.id = $5 AND e.organization_id = $2
    ) END AS endpoint_ids,
    (SELECT count(*) FROM inserted) AS inserted,
    pg_advisory_lock(hashtextextended($1, 0)) IS NULL AS lock_failed
FROM org
LEFT JOIN events existing ON existing.id = $1
"""

# (d): every delivery in one statement, unless the event was dispatched meanwhile; the
# second half returns deliveries an earlier, interrupted run inserted but never sent (this
# statement's own new rows are not visible to it: one snapshot per statement).
_INSERT_DELIVERIES = """
WITH open_event AS (
    SELECT id FROM events WHERE id = $1 AND dispatched_at IS NULL
), inserted AS (
    INSERT INTO deliveries (id, event_id, endpoint_id, organization_id)
    SELECT candidate.id, open_event.id, candidate.endpoint_id, $2
    FROM unnest($3::text[], $4::text[]) AS candidate (id, endpoint_id), open_event
    ON CONFLICT (event_id, endpoint_id) DO NOTHING
    RETURNING id, endpoint_id
)
SELECT id, endpoint_id, true AS open FROM inserted
UNION ALL
SELECT d.id, d.endpoint_id, true FROM deliveries d, open_event
WHERE d.event_id = $1 AND d.status = 'PENDING' AND d.attempt_count = 0
UNION ALL
SELECT NULL, NULL, false WHERE NOT EXISTS (SELECT 1 FROM open_event)
"""

# A session-level advisory lock per event (taken by _PREPARE), held from "is it dispatched?"
# to "it is": the deliveries are committed (visible to senders) before their tasks are
# published.
_UNLOCK_EVENT = "SELECT pg_advisory_unlock(hashtextextended($1, 0))"

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

    async def drop(self, event_id: str, hour: str) -> int | None:
        """Mark a dropped event dispatched and count it; the hour's total, None if counted."""
        return await self._pool.fetchval(_DROP, event_id, BACKPRESSURE_ACTION, hour)

    def event_lock(self, event_id: str) -> EventLock:
        return EventLock(self._pool, event_id)


class EventLock:
    """Serializes the dispatch of one event across messages and dispatcher replicas.

    Two copies of one event message (a producer's retry, a redelivery) can be handled at
    the same moment; the second waits here, then finds the event dispatched and publishes
    nothing. Deliveries are inserted outside any long transaction, so a sender never gets a
    task whose row it cannot see yet. A crashed dispatcher's lock dies with its connection.
    """

    def __init__(self, pool: asyncpg.Pool, event_id: str) -> None:
        self._pool = pool
        self._event_id = event_id
        self._conn: asyncpg.Connection | None = None
        self._locked = False

    async def __aenter__(self) -> EventLock:
        self._conn = await self._pool.acquire()
        return self

    async def prepare(self, event: EventMessage, pending_limit: int) -> EventContext | None:
        """Store the event if it is new and take its lock; None when its organization does
        not exist (then nothing is locked)."""
        assert self._conn is not None and event.id == self._event_id
        try:
            row = await self._conn.fetchrow(
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
        except BaseException:
            # A cancelled or failed wait may still have been granted on the server.
            await self._discard()
            raise
        if row is None:
            return None
        self._locked = True
        return EventContext(
            plan=row["plan"],
            stored_organization_id=row["stored_organization_id"],
            dispatched_at=row["dispatched_at"],
            pending=row["pending"],
            endpoint_ids=list(row["endpoint_ids"]),
        )

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._conn is None:
            return  # discarded
        if self._locked:
            try:
                await self._conn.execute(_UNLOCK_EVENT, self._event_id)
            except BaseException:
                await self._discard()
                raise
        await self._pool.release(self._conn)

    async def _discard(self) -> None:
        """The pool releases connections without a reset query (libs/common/db/pool.py), so a
        lock whose unlock failed, or that may have been granted after a cancelled wait, must
        not go back to the pool: closing the connection drops it on the server."""
        assert self._conn is not None
        conn, self._conn = self._conn, None
        conn.terminate()
        await self._pool.release(conn)

    async def insert_deliveries(
        self, organization_id: str, delivery_ids: list[str], endpoint_ids: list[str]
    ) -> list[PendingDelivery] | None:
        """The deliveries to publish, or None when the event is already dispatched."""
        assert self._conn is not None
        rows = await self._conn.fetch(
            _INSERT_DELIVERIES, self._event_id, organization_id, delivery_ids, endpoint_ids
        )
        if any(not row["open"] for row in rows):
            return None
        return [PendingDelivery(row["id"], row["endpoint_id"]) for row in rows]

    async def mark_dispatched(self) -> None:
        assert self._conn is not None
        await self._conn.execute(_MARK_DISPATCHED, self._event_id)
