"""The reconciler's SQL: work PostgreSQL says is due and not done (reconciler.py says why).

Each claim takes a batch of overdue rows FOR UPDATE SKIP LOCKED, so reconcilers running in
several replicas never take the same row, and runs in the caller's transaction: the rows
stay locked while their messages are published, and only the confirmed ones are marked
(their clock restarts: none is re-driven again before the bound has passed once more).
Both reach their rows through partial indexes of the unfinished rows alone (migration 0006).
A row whose message waits among the poison messages is left alone: it would only fail again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

_OVERDUE_EVENTS = """
SELECT e.id, e.organization_id, e.type, e.data, e.created_at, e.target_endpoint_id,
       e.target_delivery_id, e.trace_context, e.ordering_key
FROM events e
WHERE e.dispatched_at IS NULL
  AND COALESCE(e.published_at, e.created_at) < now() - make_interval(secs => $1)
  AND NOT EXISTS (
      SELECT 1 FROM poison_messages p WHERE p.message_id = e.id AND p.replayed_at IS NULL)
ORDER BY COALESCE(e.published_at, e.created_at)
LIMIT $2
FOR UPDATE OF e SKIP LOCKED
"""
_EVENTS_SENT = "UPDATE events SET published_at = now() WHERE id = ANY ($1::text[])"

_OVERDUE_DELIVERIES = """
SELECT d.id, d.event_id, d.endpoint_id, d.organization_id, d.attempt_count, d.schedule_start,
       d.ordering_key, e.type, e.data, e.created_at AS event_created_at
FROM deliveries d
JOIN events e ON e.id = d.event_id
WHERE d.status = 'PENDING'
  AND d.next_attempt_at < now() - make_interval(secs => $1)
  AND NOT EXISTS (
      SELECT 1 FROM poison_messages p WHERE p.message_id = d.id AND p.replayed_at IS NULL)
ORDER BY d.next_attempt_at
LIMIT $2
FOR UPDATE OF d SKIP LOCKED
"""
_DELIVERIES_SENT = "UPDATE deliveries SET next_attempt_at = now() WHERE id = ANY ($1::text[])"


@dataclass(frozen=True)
class Overdue:
    """One kind of overdue work: how to claim a batch of it, how to restart its clocks."""

    what: str  # the metric's label
    claim_sql: str
    restart_sql: str


EVENTS = Overdue("event", _OVERDUE_EVENTS, _EVENTS_SENT)
DELIVERIES = Overdue("delivery", _OVERDUE_DELIVERIES, _DELIVERIES_SENT)


async def claim(
    conn: asyncpg.Connection, kind: Overdue, after_s: float, limit: int
) -> list[asyncpg.Record]:
    """A batch of `kind` overdue by `after_s`, locked for the caller's transaction."""
    return await conn.fetch(kind.claim_sql, after_s, limit)


async def restart_clocks(conn: asyncpg.Connection, kind: Overdue, ids: Sequence[str]) -> None:
    """Those re-driven: none is re-driven again before the bound has passed once more."""
    await conn.execute(kind.restart_sql, list(ids))
