"""Partition maintenance's edges (real PostgreSQL): one replica at a time, a day whose rows
arrived before its partition, the idempotency window, an attempt leaving with its delivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from libs.infra.db import partitions
from libs.infra.db.migrate import migrate
from libs.infra.db.partitions import _LOCK_KEY
from libs.infra.db.pool import create_pool
from services.api.events.repository import EventInserts, NewEvent, get_by_idempotency_key
from tests.retention.history import insert_day, make_org, noon, ulid_at


async def test_a_second_replica_skips_the_round_another_is_doing(fresh_dsn: str) -> None:
    await migrate(fresh_dsn)
    other, conn = await asyncpg.connect(fresh_dsn), await asyncpg.connect(fresh_dsn)
    try:
        await other.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)  # a round in progress
        far = datetime.now(UTC).date() + timedelta(days=60)
        report = await partitions.maintain(conn, 30, far)
        assert report.skipped and not report.created and not report.dropped
        await other.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        report = await partitions.maintain(conn, 30, far)
        assert not report.skipped and f"events_p{far:%Y%m%d}" in report.created
        assert any(name.startswith("events_p") for name in report.dropped)
    finally:
        await other.close()
        await conn.close()


async def test_rows_that_arrived_before_their_day_partition_move_into_it(fresh_dsn: str) -> None:
    """An event id from a clock ten days ahead lands in the default partition; when its day
    is created, its rows (event, delivery, attempts) move into the new partitions."""
    await migrate(fresh_dsn)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        endpoint = await make_org(conn, "org_ahead")
        ahead = datetime.now(UTC).date() + timedelta(days=10)
        rows = await insert_day(conn, "org_ahead", endpoint, ahead, 3)
        homes = "SELECT DISTINCT tableoid::regclass::text FROM {} WHERE event_id = ANY ($1)"
        assert await conn.fetchval(homes.format("deliveries"), rows.events) == (
            "deliveries_default"
        )
        report = await partitions.maintain(conn, 30, ahead - timedelta(days=partitions.AHEAD_DAYS))
        assert f"deliveries_p{ahead:%Y%m%d}" in report.created
        for table in partitions.HISTORY[:2]:
            assert await conn.fetchval(homes.format(table), rows.events) == (
                f"{table}_p{ahead:%Y%m%d}"
            )
            assert await conn.fetchval(f"SELECT count(*) FROM {table}_default") == 0
        assert (
            await conn.fetchval("SELECT count(*) FROM events WHERE id = ANY ($1)", rows.events) == 3
        )
    finally:
        await conn.close()


async def test_an_idempotency_key_is_honoured_for_a_day_then_free(fresh_dsn: str) -> None:
    await migrate(fresh_dsn)
    pool = await create_pool(fresh_dsn)
    today = datetime.now(UTC).date()
    try:
        async with pool.acquire() as conn:
            await make_org(conn, "org_keys")
            # Reserved yesterday (for yesterday and today) and three days ago (for then and
            # the day after), as EventInserts would have.
            for key, day in (
                ("yesterday", today - timedelta(days=1)),
                ("old", today - timedelta(days=3)),
            ):
                event_id = ulid_at("evt", noon(day))
                await conn.execute(
                    "INSERT INTO events (id, organization_id, type, data, idempotency_key,"
                    " idempotency_fingerprint) VALUES ($1, 'org_keys', 'mapping.completed',"
                    " '{}', $2, 'fp')",
                    event_id,
                    key,
                )
                for reserved in (day, day + timedelta(days=1)):
                    await conn.execute(
                        "INSERT INTO idempotency_keys (organization_id, idempotency_key, day,"
                        " event_id) VALUES ('org_keys', $1, $2, $3)",
                        key,
                        reserved,
                        event_id,
                    )
        inserts = EventInserts(pool)

        def event(key: str) -> NewEvent:
            now = ulid_at("evt", datetime.now(UTC))
            return NewEvent(now, "org_keys", "mapping.completed", "{}", key, "fp")

        assert await inserts.insert(event("yesterday")) is None  # still the first event's
        found = await get_by_idempotency_key(pool, "org_keys", "yesterday")
        assert found is not None and found["id"].startswith("evt_")
        assert await inserts.insert(event("old")) is not None  # past its window: a new event
        assert await inserts.insert(event("old")) is None  # which holds the key from now on
        await inserts.close()
        reserved = await pool.fetch(
            "SELECT day FROM idempotency_keys WHERE idempotency_key = 'old' ORDER BY day"
        )
        assert [r["day"] for r in reserved][-2:] == [today, today + timedelta(days=1)]
    finally:
        await pool.close()


async def test_deleting_deliveries_deletes_their_attempts(fresh_dsn: str) -> None:
    """What the foreign key's cascade did (an endpoint's DELETE takes its history along)."""
    await migrate(fresh_dsn)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        endpoint = await make_org(conn, "org_del")
        await make_org(conn, "org_stays")
        await insert_day(conn, "org_del", endpoint, datetime.now(UTC).date(), 3)
        await insert_day(conn, "org_stays", "dest_org_stays", datetime.now(UTC).date(), 2)
        await conn.execute("DELETE FROM endpoints WHERE id = $1", endpoint)
        assert await conn.fetchval("SELECT count(*) FROM deliveries") == 2
        assert await conn.fetchval("SELECT count(*) FROM delivery_attempts") == 4
    finally:
        await conn.close()
