"""All SQL for `events`, which doubles as the outbox (published_at NULL until confirmed)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from libs.infra.batching import Batcher

Executor = asyncpg.Connection | asyncpg.Pool

_COLUMNS = (
    "id, organization_id, type, data, idempotency_key, idempotency_fingerprint,"
    " target_endpoint_id, target_delivery_id, created_at, published_at, trace_context,"
    " ordering_key"
)


async def insert_event(conn: Executor, event: NewEvent) -> asyncpg.Record:
    """The new row (an event without an idempotency key: keyed ones go through
    EventInserts)."""
    return await conn.fetchrow(
        "INSERT INTO events (id, organization_id, type, data, target_endpoint_id,"
        " target_delivery_id, trace_context, ordering_key)"
        " VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7, $8)"
        f" RETURNING {_COLUMNS}",
        *(getattr(event, name) for name in _ROW_FIELDS),
    )


# The key's reservation for today (UTC), or, just after midnight, yesterday's: the one
# _INSERT_MANY's insert conflicted with. Its event, when the event is still kept.
_BY_IDEMPOTENCY_KEY = f"""
SELECT {", ".join("e." + column.strip() for column in _COLUMNS.split(","))}
FROM idempotency_keys k JOIN events e ON e.id = k.event_id
WHERE k.organization_id = $1 AND k.idempotency_key = $2
  AND k.day <= (now() AT TIME ZONE 'UTC')::date
ORDER BY k.day DESC
LIMIT 1
"""


async def get_by_idempotency_key(conn: Executor, org_id: str, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_BY_IDEMPOTENCY_KEY, org_id, key)


async def get_event(conn: Executor, org_id: str, event_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM events WHERE id = $1 AND organization_id = $2", event_id, org_id
    )


async def mark_published(conn: Executor, event_ids: list[str]) -> None:
    if event_ids:
        await conn.execute(
            "UPDATE events SET published_at = now()"
            " WHERE id = ANY($1::text[]) AND published_at IS NULL",
            event_ids,
        )


async def claim_unpublished(
    conn: asyncpg.Connection, grace_s: float, limit: int
) -> list[asyncpg.Record]:
    """Unconfirmed events older than the grace period, locked for this relay's transaction.

    SKIP LOCKED lets several api replicas relay side by side without waiting on each other.
    """
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM events"
        " WHERE published_at IS NULL AND created_at < now() - make_interval(secs => $1::float8)"
        " ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        grace_s,
        limit,
    )


@dataclass(frozen=True, slots=True)
class NewEvent:
    id: str
    organization_id: str
    type: str
    data_json: str  # the data as JSON text, already checked to fit jsonb
    idempotency_key: str | None = None
    fingerprint: str | None = None
    target_endpoint_id: str | None = None
    target_delivery_id: str | None = None
    trace_context: dict[str, str] | None = None
    ordering_key: str | None = None


# The fields of NewEvent insert_event and _INSERT_MANY take, in their parameters' order.
_ROW_FIELDS = (
    "id",
    "organization_id",
    "type",
    "data_json",
    "target_endpoint_id",
    "target_delivery_id",
    "trace_context",
    "ordering_key",
)
_INSERT_FIELDS = (
    "id",
    "organization_id",
    "type",
    "data_json",
    "idempotency_key",
    "fingerprint",
    "target_endpoint_id",
    "target_delivery_id",
    "trace_context",
    "ordering_key",
)

# Rows of an org that no longer exists are left out (its token may still be cached for up to
# HOOKPOST_TOKEN_CACHE_TTL_S): one such row would otherwise fail the whole batch on the
# foreign key, every other org's request with it.
# An Idempotency-Key is reserved for today (UTC) and, once that succeeded, for tomorrow
# (migration 0007: idempotency_keys is partitioned by day, unique per org, key and day), so
# a repeat within 24 hours conflicts with its own day's reservation and stores nothing. An
# event with a key is stored only when this statement reserved it.
_INSERT_MANY = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::text[])
        AS e (id, organization_id, type, data, idempotency_key, fingerprint,
              target_endpoint_id, target_delivery_id, trace_context, ordering_key)
    WHERE EXISTS (SELECT 1 FROM organizations o WHERE o.id = e.organization_id)
), reserved AS (
    INSERT INTO idempotency_keys (organization_id, idempotency_key, day, event_id)
    SELECT organization_id, idempotency_key, (now() AT TIME ZONE 'UTC')::date, id
    FROM input WHERE idempotency_key IS NOT NULL
    ORDER BY organization_id, idempotency_key
    ON CONFLICT DO NOTHING
    RETURNING event_id, organization_id, idempotency_key, day
), reserved_ahead AS (
    INSERT INTO idempotency_keys (organization_id, idempotency_key, day, event_id)
    SELECT organization_id, idempotency_key, day + 1, event_id FROM reserved
    ON CONFLICT DO NOTHING
)
INSERT INTO events (id, organization_id, type, data, idempotency_key, idempotency_fingerprint,
                    target_endpoint_id, target_delivery_id, trace_context, ordering_key)
SELECT e.id, e.organization_id, e.type, e.data::jsonb, e.idempotency_key, e.fingerprint,
       e.target_endpoint_id, e.target_delivery_id, e.trace_context, e.ordering_key
FROM input e
WHERE e.idempotency_key IS NULL OR e.id IN (SELECT event_id FROM reserved)
RETURNING id, created_at
"""

# One statement (one commit) for every event collected while the previous ones were being
# written: a batch goes out on the next loop turn, or, when both write slots are busy, waits
# and keeps collecting (group commit). The delay is 0: an idle api adds no latency.
INSERT_BATCH_MAX = 200
INSERT_BATCH_DELAY_S = 0.0
MAX_CONCURRENT_INSERTS = 2


def _idempotency_scope(event: NewEvent) -> Hashable:
    # Two requests with one key never share a statement: the later one meets the earlier
    # one's committed row, exactly as two separate inserts did (same body: the same eventId;
    # another body: 409).
    if event.idempotency_key is None:
        return None
    return (event.organization_id, event.idempotency_key)


class EventInserts:
    """The inserts of accepted events (POST /events, /test calls) from concurrent requests,
    batched into one `INSERT … SELECT FROM unnest(…)` each."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._batcher: Batcher[NewEvent, datetime | None] = Batcher(
            self._insert_many,
            max_items=INSERT_BATCH_MAX,
            max_delay_s=INSERT_BATCH_DELAY_S,
            key=_idempotency_scope,
            max_concurrent_writes=MAX_CONCURRENT_INSERTS,
        )

    async def insert(self, event: NewEvent) -> datetime | None:
        """The stored row's created_at once committed; None when nothing was stored: the
        org already used this idempotency key, or the org no longer exists."""
        return await self._batcher.submit(event)

    async def insert_now(self, events: list[NewEvent]) -> list[datetime | None]:
        """As `insert`, for a batch of events already together (no two with one key): one
        statement of its own, whatever size."""
        return await self._insert_many(events) if events else []

    async def _insert_many(self, events: list[NewEvent]) -> list[datetime | None]:
        # One array per column of the unnest, in its order.
        columns = ([getattr(e, name) for e in events] for name in _INSERT_FIELDS)
        rows = await self._pool.fetch(_INSERT_MANY, *columns)
        created = {row["id"]: row["created_at"] for row in rows}
        return [created.get(e.id) for e in events]

    async def close(self) -> None:
        await self._batcher.close()
