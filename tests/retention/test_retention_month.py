"""Retention over a simulated month and a half: 45 days of rows, partition maintenance run
every day with a moving "today"; the tables stay bounded in partitions and rows, whole days
leave at once, and the pipeline's and the api's queries keep working (real PostgreSQL)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import asyncpg

from libs.infra.db import partitions
from libs.infra.db.migrate import migrate
from libs.infra.db.pool import create_pool
from services.api.deliveries import repository as deliveries_api
from services.dispatcher import overdue
from tests.retention.history import insert_day, make_org

RETENTION_DAYS = 30
PER_DAY = 20
DAYS = 45


async def count(conn: asyncpg.Connection, table: str) -> int:
    return await conn.fetchval(f"SELECT count(*) FROM {table}")


async def plan(conn: asyncpg.Connection, sql: str, *args: object) -> str:
    rows = await conn.fetch(f"EXPLAIN {sql}", *args)
    return "\n".join(r[0] for r in rows)


async def test_a_month_of_days_stays_bounded_and_queryable(fresh_dsn: str) -> None:
    await migrate(fresh_dsn)
    start = datetime.now(UTC).date()
    conn = await asyncpg.connect(fresh_dsn)
    try:
        endpoint = await make_org(conn, "org_month")
        days = {}
        dropped: list[str] = []
        round_ms = []
        for k in range(DAYS):
            today = start + timedelta(days=k)
            began = time.perf_counter()
            report = await partitions.maintain(conn, RETENTION_DAYS, today)
            round_ms.append((time.perf_counter() - began) * 1000)
            assert not report.skipped and not report.busy
            dropped += report.dropped
            days[today] = await insert_day(conn, "org_month", endpoint, today, PER_DAY)

            kept_days = min(k + 1, RETENTION_DAYS + 1)  # today and the 30 days before it
            for table in partitions.HISTORY:
                assert await count(conn, table + "_default") == 0
                assert len(await partitions.day_partitions(conn, table)) <= (
                    RETENTION_DAYS + 1 + partitions.AHEAD_DAYS + 1  # + the migration's yesterday
                )
            assert await count(conn, "events") == kept_days * PER_DAY
            assert await count(conn, "deliveries") == kept_days * PER_DAY
            assert await count(conn, "delivery_attempts") == kept_days * PER_DAY * 2
            assert await count(conn, "audit_log") == kept_days * PER_DAY
            assert len(await partitions.day_partitions(conn, "idempotency_keys")) <= (
                partitions.IDEMPOTENCY_KEEP_DAYS + 1 + partitions.AHEAD_DAYS
            )

        last = start + timedelta(days=DAYS - 1)
        # The oldest day kept is exactly 30 days before the last "today"; the one before left
        # whole: its events, deliveries, attempts and audit entries, by dropped partitions.
        oldest_kept, first_gone = last - timedelta(days=30), last - timedelta(days=31)
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM events WHERE id = ANY ($1::text[])", days[oldest_kept].events
            )
            == PER_DAY
        )
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM deliveries WHERE id = ANY ($1::text[])",
                days[first_gone].deliveries,
            )
            == 0
        )
        for table in ("events", "deliveries", "delivery_attempts", "audit_log"):
            assert f"{table}_p{first_gone:%Y%m%d}" in dropped
        # One maintenance round: a few partitions created and dropped, well under a second.
        assert max(round_ms) < 5000, round_ms
    finally:
        await conn.close()

    pool = await create_pool(fresh_dsn)
    try:
        newest = await deliveries_api.list_for_endpoint(pool, "org_month", endpoint, 50)
        assert [r["id"] for r in newest] == sorted(
            (d for day in sorted(days)[-3:] for d in days[day].deliveries), reverse=True
        )[:50]
        await pool.execute(
            "UPDATE deliveries SET status = 'PENDING', next_attempt_at = now() - interval '1 h'"
            " WHERE id = $1",
            days[last].deliveries[0],
        )
        async with pool.acquire() as conn, conn.transaction():
            claimed = await overdue.claim(conn, overdue.DELIVERIES, 60, 100)
            assert [r["id"] for r in claimed] == [days[last].deliveries[0]]
            # The indexes the reconciler and the api's lists use are still used (each
            # partition's copy of it) once sequential scans are priced out of a small table.
            await conn.execute("SET LOCAL enable_seqscan = off")
            due = await plan(conn, overdue.DELIVERIES.claim_sql, 60.0, 100)
            assert "next_attempt_at_idx" in due and "Seq Scan on deliveries" not in due
            undispatched = await plan(conn, overdue.EVENTS.claim_sql, 60.0, 100)
            assert "coalesce_idx" in undispatched
            listing = await plan(
                conn,
                "SELECT d.id FROM deliveries d WHERE d.endpoint_id = $1"
                " ORDER BY d.created_at DESC LIMIT 50",
                endpoint,
            )
            assert "endpoint_id_created_at_idx" in listing
            by_id = await plan(conn, "SELECT * FROM events WHERE id = $1", days[last].events[0])
            # an event is looked up in its day's partition alone
            assert by_id.count("Index Scan") == 1, by_id
    finally:
        await pool.close()
