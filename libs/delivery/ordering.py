"""Ordered delivery's SQL: which HELD delivery of an (endpoint, key) line goes next.

The rule is libs/domain/ordering.py's. Here is how it holds with any number of dispatchers
and engines at once. Every change to a line is followed by a *release* of that line, in a
transaction of its own that first takes the line's advisory lock and only then looks:

- the dispatcher inserts an ordered endpoint's deliveries HELD, commits, then releases
  their lines (and, for each keyed event it marked dispatched, every line of that key in the
  organization that has a HELD delivery: an earlier event may have been holding it);
- the engine, when a line's head ends (SUCCEEDED, FAILED or DEAD) or is PARKED (its
  endpoint INACTIVE: libs/domain/ordering.py RELEASES_LINE), releases its line;
- the api, reopening deliveries of a line by hand (a retry, a recover), puts them back HELD
  and releases their lines in the same transaction (`rejoin`): a reopened delivery goes at
  once only when its line has no head, else it waits its turn like any other.

A release promotes the line's earliest HELD delivery to PENDING when nothing of the line is
PENDING and no earlier event of the key waits to be dispatched, then the caller publishes
its step. Each release reads after taking the lock (its own statement, so its snapshot is
newer than every commit that came before the lock), so whichever of two racing changes
releases last sees both: no HELD delivery is left behind a finished head, and at most one
delivery per line is PENDING. A crash between a change and its release leaves a line
without a head; the reconciler finds such lines (`stuck_lines`) and releases them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import asyncpg

from libs.infra.broker.messages import DeliveryStep, DeliveryTask

Line = tuple[str, str]  # (endpoint id, ordering key)


class Reopened(NamedTuple):
    """A delivery of an ordered line that the api has just reopened by hand."""

    delivery_id: str
    event_id: str
    endpoint_id: str
    ordering_key: str


# Each line's lock, taken in one order (no deadlock between two releases of several lines).
_LOCK_LINES = """
SELECT count(pg_advisory_xact_lock(k.key)) FROM (
    SELECT DISTINCT hashtextextended(p.endpoint_id || chr(31) || p.ordering_key, 0) AS key
    FROM unnest($1::text[], $2::text[]) AS p (endpoint_id, ordering_key)
    ORDER BY 1
) AS k
"""

# The lines with a HELD delivery of these (organization, key) pairs, locked (the
# deliveries_held index). A line HELD after this snapshot is released by its own inserter.
_LOCK_LINES_OF_KEYS = """
SELECT endpoint_id, ordering_key, pg_advisory_xact_lock(key) IS NOT NULL AS locked FROM (
    SELECT DISTINCT d.endpoint_id, d.ordering_key,
           hashtextextended(d.endpoint_id || chr(31) || d.ordering_key, 0) AS key
    FROM unnest($1::text[], $2::text[]) AS k (organization_id, ordering_key)
    JOIN deliveries d ON d.organization_id = k.organization_id
        AND d.ordering_key = k.ordering_key AND d.status = 'HELD'
    ORDER BY key
    OFFSET 0
) AS line
"""

# Per line: its earliest HELD delivery becomes PENDING (due now, so the reconciler re-drives
# it if its publish is lost) when nothing of the line is PENDING and no earlier event of the
# key is still to be dispatched (one kept as poison does not hold a line for ever). Returns
# what a task is built from.
_PROMOTE = """
WITH line AS (
    SELECT DISTINCT endpoint_id, ordering_key
    FROM unnest($1::text[], $2::text[]) AS p (endpoint_id, ordering_key)
), head AS (
    SELECT h.id, h.event_id
    FROM line
    CROSS JOIN LATERAL (
        SELECT d.id, d.event_id, d.organization_id FROM deliveries d
        WHERE d.endpoint_id = line.endpoint_id AND d.ordering_key = line.ordering_key
          AND d.status = 'HELD'
        ORDER BY d.event_id
        LIMIT 1
    ) AS h
    WHERE NOT EXISTS (
        SELECT 1 FROM deliveries p
        WHERE p.endpoint_id = line.endpoint_id AND p.ordering_key = line.ordering_key
          AND p.status = 'PENDING'
    ) AND NOT EXISTS (
        SELECT 1 FROM events e
        WHERE e.organization_id = h.organization_id AND e.ordering_key = line.ordering_key
          AND e.dispatched_at IS NULL AND e.id < h.event_id
          AND NOT EXISTS (
              SELECT 1 FROM poison_messages pm
              WHERE pm.message_id = e.id AND pm.replayed_at IS NULL)
    )
)
UPDATE deliveries d SET status = 'PENDING', next_attempt_at = now(), updated_at = now()
FROM head JOIN events e ON e.id = head.event_id
WHERE d.id = head.id AND d.event_id = head.event_id AND d.status = 'HELD'
RETURNING d.id, d.event_id, d.endpoint_id, d.organization_id, d.ordering_key, e.type, e.data,
          e.created_at AS event_created_at, d.attempt_count, d.schedule_start
"""

# Deliveries the caller just reopened (PENDING, with their new retry schedule) join their
# lines as HELD, not due: the release that follows decides whether one of them goes now.
_REJOIN = """
UPDATE deliveries SET status = 'HELD', next_attempt_at = NULL, updated_at = now()
WHERE (id, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
  AND event_id = ANY ($2::text[]) AND status = 'PENDING'
"""

# Lines with HELD deliveries and nothing PENDING, HELD for longer than the bound: a release
# that never ran (a crash), or one still waiting for an earlier event.
_STUCK_LINES = """
SELECT DISTINCT h.endpoint_id, h.ordering_key
FROM deliveries h
WHERE h.status = 'HELD' AND h.updated_at < now() - make_interval(secs => $1)
  AND NOT EXISTS (
      SELECT 1 FROM deliveries p
      WHERE p.endpoint_id = h.endpoint_id AND p.ordering_key = h.ordering_key
        AND p.status = 'PENDING')
LIMIT $2
"""


class LineReleases:
    """Releases of ordered lines; each returns the steps of the deliveries it promoted, for
    the caller to publish to the sender queue: each at its next attempt (1 for a delivery
    never attempted, later for one reopened by hand), in its current retry schedule."""

    def __init__(self, pool: asyncpg.Pool, payload_cap_bytes: int) -> None:
        self._pool = pool
        self._payload_cap = payload_cap_bytes

    async def release(self, lines: Iterable[Line]) -> list[DeliveryStep]:
        """Release these lines (after a head ended, or deliveries were HELD on them)."""
        endpoint_ids, keys = _columns(set(lines))
        if not endpoint_ids:
            return []
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.fetchval(_LOCK_LINES, endpoint_ids, keys)
            rows = await conn.fetch(_PROMOTE, endpoint_ids, keys)
        return _steps(rows, self._payload_cap)

    async def release_keys(self, keys: Iterable[tuple[str, str]]) -> list[DeliveryStep]:
        """Release every line of these (organization id, ordering key) pairs that holds a
        delivery: what an event of the key, now dispatched, may have been holding back."""
        org_ids, ordering_keys = _columns(set(keys))
        if not org_ids:
            return []
        async with self._pool.acquire() as conn, conn.transaction():
            lines = await conn.fetch(_LOCK_LINES_OF_KEYS, org_ids, ordering_keys)
            if not lines:
                return []
            rows = await conn.fetch(
                _PROMOTE,
                [line["endpoint_id"] for line in lines],
                [line["ordering_key"] for line in lines],
            )
        return _steps(rows, self._payload_cap)

    async def stuck_lines(self, after_s: float, limit: int) -> list[Line]:
        rows = await self._pool.fetch(_STUCK_LINES, after_s, limit)
        return [(row["endpoint_id"], row["ordering_key"]) for row in rows]


async def rejoin(
    conn: asyncpg.Connection, reopened: Iterable[Reopened], payload_cap_bytes: int
) -> list[DeliveryStep]:
    """In the caller's transaction, which has just reopened these deliveries of ordered
    lines by hand (PENDING with a new schedule) and holds their rows: they wait HELD, and
    their lines are released under the lines' locks, as any release is. What is returned
    goes now: a reopened delivery whose line had no head (the earliest, in line order), or
    an earlier HELD one of its line whose own release was lost. The locks last until the
    caller's commit, so no release of these lines runs in between."""
    ordered = sorted(set(reopened))
    if not ordered:
        return []
    endpoint_ids, keys = _columns({(r.endpoint_id, r.ordering_key) for r in ordered})
    await conn.fetchval(_LOCK_LINES, endpoint_ids, keys)
    await conn.execute(_REJOIN, [r.delivery_id for r in ordered], [r.event_id for r in ordered])
    return _steps(await conn.fetch(_PROMOTE, endpoint_ids, keys), payload_cap_bytes)


def _steps(rows: list[asyncpg.Record], payload_cap_bytes: int) -> list[DeliveryStep]:
    """Each promoted delivery at its next attempt, in its current retry schedule."""
    return [
        DeliveryStep(
            DeliveryTask.from_row(row, payload_cap_bytes),
            row["attempt_count"] + 1,
            row["schedule_start"],
        )
        for row in rows
    ]


def _columns(pairs: set[tuple[str, str]]) -> tuple[list[str], list[str]]:
    ordered = sorted(pairs)
    return [first for first, _ in ordered], [second for _, second in ordered]
