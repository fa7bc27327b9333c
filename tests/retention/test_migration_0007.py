"""Migration 0007 converts the history tables to day partitions without losing a row, and the
pipeline's and the api's statements work on what it made (real PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from libs.delivery.repository import AttemptRecord, DeliveryRepository
from libs.infra.db.migrate import migrate
from libs.infra.db.pool import create_pool
from services.api.deliveries import repository as deliveries_api
from services.api.events.repository import EventInserts, NewEvent, get_by_idempotency_key
from services.dispatcher import overdue
from tests.retention.history import insert_day, make_org, noon, ulid_at

SNAPSHOTS = {
    "events": "SELECT * FROM events ORDER BY id",
    "deliveries": "SELECT * FROM deliveries ORDER BY id",
    "delivery_attempts": "SELECT * FROM delivery_attempts ORDER BY id",
    "audit_log": "SELECT * FROM audit_log ORDER BY id",
}


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    return {table: [dict(r) for r in await conn.fetch(sql)] for table, sql in SNAPSHOTS.items()}


async def test_every_row_survives_and_the_app_works_on_the_partitioned_tables(
    fresh_dsn: str,
) -> None:
    await migrate(fresh_dsn, up_to=6)
    today = datetime.now(UTC).date()
    conn = await asyncpg.connect(fresh_dsn)
    try:
        endpoint = await make_org(conn, "org_a")
        by_day = {}
        for age in (40, 3, 1, 0):
            by_day[age] = await insert_day(
                conn, "org_a", endpoint, today - timedelta(days=age), 5, attempt_event_ids=False
            )
        # An id that is not a ULID (an AMQP producer's), a keyed event of today, a PENDING
        # delivery long overdue, and the hourly backpressure entry.
        await conn.execute(
            "INSERT INTO events (id, organization_id, type, data)"
            " VALUES ('evt_legacy_1', 'org_a', 'mapping.completed', '{}')"
        )
        keyed = ulid_at("evt", datetime.now(UTC))
        await conn.execute(
            "INSERT INTO events (id, organization_id, type, data, idempotency_key,"
            " idempotency_fingerprint) VALUES ($1, 'org_a', 'mapping.completed', '{}', 'k1',"
            " 'fp1')",
            keyed,
        )
        # Newer than today's rows (made at noon) whatever the hour, so the listing (newest
        # first) puts it first; before noon, made now, it came after them.
        pending_at = noon(today) + timedelta(hours=1)
        pending = ulid_at("del", pending_at)
        await conn.execute(
            "INSERT INTO deliveries (id, event_id, endpoint_id, organization_id, created_at,"
            " next_attempt_at) VALUES ($1, $2, $3, 'org_a', $4, now() - interval '1 hour')",
            pending,
            keyed,
            endpoint,
            pending_at,
        )
        await conn.execute(
            "INSERT INTO audit_log (organization_id, action, details, dedup_key)"
            " VALUES ('org_a', 'events.dropped.backpressure', '{\"dropped\": 3}', $1)",
            datetime.now(UTC).strftime("%Y-%m-%dT%H"),
        )
        before = await snapshot(conn)

        applied = await migrate(fresh_dsn)  # and any later migration
        assert applied[:2] == ["0007_partitioned_history.sql", "0008_workers.sql"]

        after = await snapshot(conn)
        # what later migrations add (0012's ordering_key) is not part of the comparison
        for table in ("events", "deliveries"):
            known = set(before[table][0])
            after[table] = [{k: v for k, v in r.items() if k in known} for r in after[table]]
        assert after["events"] == before["events"]
        assert after["deliveries"] == before["deliveries"]
        event_of = {d["id"]: d["event_id"] for d in before["deliveries"]}
        assert [
            {k: v for k, v in a.items() if k != "event_id"} for a in after["delivery_attempts"]
        ] == before["delivery_attempts"]
        assert all(a["event_id"] == event_of[a["delivery_id"]] for a in after["delivery_attempts"])
        # Every audit entry, the hourly one now dated at its hour's start.
        assert len(after["audit_log"]) == len(before["audit_log"])
        for old, new in zip(before["audit_log"], after["audit_log"], strict=True):
            if old["dedup_key"] is None:
                assert new == old
            else:
                hour = datetime.strptime(old["dedup_key"], "%Y-%m-%dT%H").replace(tzinfo=UTC)
                assert new == {**old, "created_at": hour}

        # Each row sits in its event's day; an id that is not a ULID in the default.
        for age, rows in by_day.items():
            suffix = f"_p{today - timedelta(days=age):%Y%m%d}"
            for table, column, ids in (
                ("events", "id", rows.events),
                ("deliveries", "id", rows.deliveries),
                ("delivery_attempts", "delivery_id", rows.deliveries),
            ):
                homes = await conn.fetch(
                    f"SELECT DISTINCT tableoid::regclass::text AS home FROM {table}"
                    f" WHERE {column} = ANY ($1::text[])",
                    ids,
                )
                assert [h["home"] for h in homes] == [table + suffix]
        assert (
            await conn.fetchval(
                "SELECT tableoid::regclass::text FROM events WHERE id = 'evt_legacy_1'"
            )
            == "events_default"
        )

        # What migration 0009 does to the status check works on the partitioned table.
        await conn.execute(
            "ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;"
            " ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check CHECK (status IN"
            " ('PENDING', 'SUCCEEDED', 'FAILED', 'DEAD', 'PARKED'))"
        )
        await conn.execute(
            "UPDATE deliveries SET status = 'PARKED' WHERE id = $1", by_day[1].deliveries[0]
        )
        try:
            await conn.execute("UPDATE deliveries SET status = 'NOPE' WHERE id = $1", pending)
        except asyncpg.CheckViolationError:
            pass
        else:
            raise AssertionError("the re-added status check did not hold")
        # (D)uplicate (event, endpoint) pairs are still refused.
        try:
            await conn.execute(
                "INSERT INTO deliveries (id, event_id, endpoint_id, organization_id)"
                " VALUES ('del_twin', $1, $2, 'org_a')",
                keyed,
                endpoint,
            )
        except asyncpg.UniqueViolationError:
            pass
        else:
            raise AssertionError("a second delivery of one (event, endpoint) was stored")
    finally:
        await conn.close()

    pool = await create_pool(fresh_dsn)
    try:
        # The api: a repeat of the migrated key stores nothing and finds the first event.
        inserts = EventInserts(pool)
        again = NewEvent(
            ulid_at("evt", datetime.now(UTC)), "org_a", "mapping.completed", "{}", "k1", "fp1"
        )
        assert await inserts.insert(again) is None
        fresh = NewEvent(
            ulid_at("evt", datetime.now(UTC)), "org_a", "mapping.completed", "{}", "k2", "fp2"
        )
        assert await inserts.insert(fresh) is not None
        await inserts.close()
        found = await get_by_idempotency_key(pool, "org_a", "k1")
        assert found is not None and found["id"] == keyed
        listed = await deliveries_api.list_for_endpoint(pool, "org_a", endpoint, 50)
        assert len(listed) == 21 and listed[0]["id"] == pending

        # The reconciler finds the overdue delivery; the engine records its attempt.
        async with pool.acquire() as c, c.transaction():
            claimed = await overdue.claim(c, overdue.DELIVERIES, 60, 100)
        assert [r["id"] for r in claimed] == [pending]
        engine = DeliveryRepository(pool)
        status = await engine.record(
            AttemptRecord(
                ulid_at("del", datetime.now(UTC)),
                pending,
                claimed[0]["event_id"],
                1,
                noon(datetime.now(UTC).date()),
                5,
                200,
                None,
                None,
                True,
                "SUCCEEDED",
                None,
            )
        )
        assert status == "SUCCEEDED"
        assert (
            await pool.fetchval(
                "SELECT event_id FROM delivery_attempts WHERE delivery_id = $1", pending
            )
            == keyed
        )
    finally:
        await pool.close()
