"""The dispatcher keeps the day partitions: at start it drops the days past
HOOKPOST_RETENTION_DAYS and creates the coming ones, and says so in its metrics and log (the
real `hookpost dispatcher` on a database of its own; it does so before, and whether or not,
it reaches the broker)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from harness.broker import delete_broker_objects
from harness.services import hookpost, service_env
from harness.waiting import eventually
from libs.infra.db import partitions
from libs.infra.db.migrate import migrate
from tests.retention.history import insert_day, make_org


async def test_the_dispatcher_drops_days_past_retention_at_start(
    fresh_dsn: str, test_env: dict[str, str], tmp_path: Path
) -> None:
    await migrate(fresh_dsn)
    today = datetime.now(UTC).date()
    old, kept = today - timedelta(days=31), today - timedelta(days=30)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        endpoint = await make_org(conn, "org_old")
        for day in (old, kept):
            for table in (*partitions.HISTORY, "audit_log"):
                await conn.fetchval("SELECT hookpost_create_day_partition($1, $2)", table, day)
            await insert_day(conn, "org_old", endpoint, day, 3)
        ahead = today + timedelta(days=partitions.AHEAD_DAYS)
        await conn.execute(f"DROP TABLE events_p{ahead:%Y%m%d}")  # for it to create again

        prefix = f"{test_env['HOOKPOST_BROKER_PREFIX']}_retention"
        env = service_env(
            test_env,
            HOOKPOST_DATABASE_URL=fresh_dsn,
            HOOKPOST_BROKER_PREFIX=prefix,
            HOOKPOST_RETENTION_DAYS="30",
        )
        dispatcher = hookpost("dispatcher", "dispatcher", env, tmp_path / "dispatcher.log")
        # Not waiting for /readyz: retention needs PostgreSQL alone, not the broker.
        await asyncio.to_thread(dispatcher.start, None)
        try:
            gone = await eventually(
                lambda: conn.fetch(
                    "SELECT relname FROM pg_class WHERE relname = ANY ($1::text[])",
                    [f"{t}_p{old:%Y%m%d}" for t in (*partitions.HISTORY, "audit_log")],
                ),
                lambda rows: rows == [],
                timeout=30,
            )
            assert gone == []
            assert await conn.fetchval("SELECT to_regclass($1)::text", f"events_p{ahead:%Y%m%d}")
            # The day at the edge of retention stays, all of it.
            assert await conn.fetchval("SELECT count(*) FROM events") == 3
            assert await conn.fetchval("SELECT count(*) FROM delivery_attempts") == 6
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(dispatcher.url("/metrics"))).text
            assert 'hookpost_partitions_dropped_total{table="events"} 1.0' in metrics
            assert 'hookpost_partitions_created_total{table="events"} 1.0' in metrics
            assert "dropped partitions past retention" in dispatcher.log_tail(400)
            assert "partition-maintenance round failed" not in dispatcher.log_tail(400)
        finally:
            # (how it exits is the subject of other tests; it may still be reaching the broker)
            await asyncio.to_thread(dispatcher.stop, 30)  # SIGTERM, then SIGKILL
            scale = float(test_env["HOOKPOST_RETRY_DELAY_SCALE"])
            # A broker that does not answer got no queue of this prefix either.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    delete_broker_objects(test_env["HOOKPOST_AMQP_URL"], prefix, [scale]), 30
                )
    finally:
        await conn.close()
