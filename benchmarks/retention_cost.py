"""`python -m benchmarks.retention_cost`: what day partitions cost and save (RELIABILITY.md,
docs/operations.md "Retention").

A fresh database at the schema before migration 0007 gets DAYS days of history, PER_DAY
events a day with one delivery and two attempts each. Then, on the same rows:
- the sender's hottest read (`_LOAD`: 100 deliveries with their attempts), before and after
  the migration, for deliveries of the last day (what senders work on: first attempts and
  retries within the hour) named by id and event id, so only that day's partition is read;
- how long migration 0007 takes to convert them (sizing a maintenance window);
- one maintenance round that drops a whole day and creates the next, against the
  row-by-row DELETE of the same day it replaces.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

import asyncpg

from benchmarks import history
from benchmarks.common import cost_main, scratch_database
from libs.delivery.repository import _LOAD
from libs.infra.db import partitions
from libs.infra.db.migrate import migrate, migration_sql

ROUNDS = 50

# The sender's _LOAD as it was before migration 0007 (deliveries by id alone).
_LOAD_BEFORE = """
SELECT want.ord, d.status, d.attempt_count, d.schedule_start, d.endpoint_id, d.event_id,
       d.next_attempt_at,
       a.succeeded AS recorded_succeeded, a.http_status AS recorded_http_status,
       (SELECT count(*) FROM delivery_attempts t
        WHERE t.delivery_id = d.id AND t.http_status = 429
          AND t.attempt_number >= d.schedule_start AND t.attempt_number < want.attempt_number
       )::int AS throttled
FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS want (delivery_id, attempt_number, ord)
JOIN deliveries d ON d.id = want.delivery_id
LEFT JOIN delivery_attempts a ON a.delivery_id = d.id AND a.attempt_number = want.attempt_number
"""

_SETUP = history.owner("org_cost", "dest_cost", "mapping.completed")
_DAY = history.day("org_cost", "dest_cost", "mapping.completed", attempts=2, keyed=False)


def _ulid_encoder() -> str:
    """0001's schema has no ULID encoder yet: migration 0007's own, created ahead of it and
    dropped."""
    sql = migration_sql(7)
    start = sql.index("CREATE FUNCTION hookpost_ulid_prefix")
    return sql[start : sql.index("$$;", sql.index("BEGIN", start)) + 3] + "\n"


async def load_ms(
    conn: asyncpg.Connection, ids: list[list[tuple[str, str]]], *, partitioned: bool
) -> tuple[float, float]:
    """p50 and p95 wall time of the sender's _LOAD, 100 random deliveries a call (with
    their event ids once partitioned, as the engine passes them)."""
    walls = []
    for batch in ids:
        deliveries, events, numbers = [d for d, _ in batch], [e for _, e in batch], [1] * len(batch)
        started = time.perf_counter()
        if partitioned:
            rows = await conn.fetch(_LOAD, deliveries, events, numbers)
        else:
            rows = await conn.fetch(_LOAD_BEFORE, deliveries, numbers)
        walls.append((time.perf_counter() - started) * 1000)
        assert len(rows) == len(batch)
    walls.sort()
    return statistics.median(walls), walls[int(len(walls) * 0.95)]


async def measure(days: int, per_day: int) -> None:
    async with scratch_database("retention", up_to=6) as (env, conn):
        await conn.execute(_SETUP + _ulid_encoder())
        today = await conn.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
        started = time.monotonic()
        for age in range(days, 0, -1):
            await conn.execute(_DAY, history.midnight(today - timedelta(days=age)), per_day)
        await conn.execute("DROP FUNCTION hookpost_ulid_prefix(timestamptz); ANALYZE")
        print(
            f"filled {days} days x {per_day:,} events (+1 delivery, 2 attempts each) in"
            f" {time.monotonic() - started:.0f} s"
        )
        sample = await conn.fetch(
            "SELECT id, event_id FROM deliveries WHERE created_at >= $2 ORDER BY random() LIMIT $1",
            ROUNDS * 100,
            history.midnight(today - timedelta(days=1)),
        )
        ids = [
            [(r["id"], r["event_id"]) for r in sample[i : i + 100]]
            for i in range(0, len(sample), 100)
        ]
        before = await load_ms(conn, ids, partitioned=False)
        print(f"_LOAD of 100, one table:         p50 {before[0]:.2f} ms, p95 {before[1]:.2f} ms")

        started = time.monotonic()
        await migrate(env.dsn)
        took = time.monotonic() - started
        rows = days * per_day * 4
        print(f"migration 0007: {took:.1f} s for {rows:,} rows ({rows / took:,.0f} rows/s)")
        after = await load_ms(conn, ids, partitioned=True)
        parts = len(await partitions.day_partitions(conn, "deliveries"))
        print(f"_LOAD of 100, {parts} partitions:   p50 {after[0]:.2f} ms, p95 {after[1]:.2f} ms")

        oldest = min(await partitions.day_partitions(conn, "events"))
        kept = (today - oldest).days - 1  # the oldest day is past retention
        started = time.perf_counter()
        report = await partitions.maintain(conn, kept, today)
        took_ms = (time.perf_counter() - started) * 1000
        print(
            f"maintenance round: dropped {len(report.dropped)} partitions (one day of"
            f" history: {per_day:,} events and deliveries, 2x attempts), created"
            f" {len(report.created)}, in {took_ms:.0f} ms"
        )
        # The row-by-row alternative, on the next day: what the partition drop replaces.
        oldest = min(await partitions.day_partitions(conn, "events"))
        bound = "SELECT 'evt_' || hookpost_ulid_prefix($1::timestamptz)"
        lo = await conn.fetchval(bound, history.midnight(oldest))
        hi = await conn.fetchval(bound, history.midnight(oldest + timedelta(days=1)))
        started = time.perf_counter()
        async with conn.transaction():
            for table in ("delivery_attempts", "deliveries"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE event_id >= $1 AND event_id < $2", lo, hi
                )
            await conn.execute("DELETE FROM events WHERE id >= $1 AND id < $2", lo, hi)
        print(f"the same day by DELETE: {(time.perf_counter() - started) * 1000:.0f} ms")


def main() -> None:
    cost_main(__doc__, measure, days=31, per_day=10_000)


if __name__ == "__main__":
    main()
