"""`hookpost orgs erase ORG` erases one organization's rows in every table and leaves
another organization's untouched (real PostgreSQL, the real command as a subprocess)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from datetime import UTC, datetime, timedelta

import asyncpg

from harness.process import HOOKPOST_BIN
from libs.infra.db.migrate import migrate
from tests.retention.history import insert_day, make_org, rows_of


async def populate(conn: asyncpg.Connection, org_id: str) -> None:
    endpoint = await make_org(conn, org_id)
    today = datetime.now(UTC).date()
    for age in (5, 1, 0):
        await insert_day(conn, org_id, endpoint, today - timedelta(days=age), 4)
    await conn.execute(
        "INSERT INTO idempotency_keys (organization_id, idempotency_key, day, event_id)"
        " VALUES ($1, 'key-1', $2, 'evt_x')",
        org_id,
        today,
    )
    await conn.execute(
        "INSERT INTO mapping_jobs (id, organization_id) VALUES ($1, $2)", f"job_{org_id}", org_id
    )
    await conn.execute(
        "INSERT INTO poison_messages (queue, exchange, routing_key, body)"
        " VALUES ('p.dead.events', 'p.events', 'mapping.completed', $1)",
        json.dumps({"id": "evt_poison", "organizationId": org_id}).encode(),
    )


async def erase_org(dsn: str, org_id: str) -> subprocess.CompletedProcess[str]:
    """`hookpost orgs erase <org_id>` on the database at `dsn`, as an operator runs it."""
    return await asyncio.to_thread(
        subprocess.run,
        [str(HOOKPOST_BIN), "orgs", "erase", org_id],
        env={**os.environ, "HOOKPOST_DATABASE_URL": dsn},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_erase_removes_one_org_everywhere_and_leaves_the_other(fresh_dsn: str) -> None:
    await migrate(fresh_dsn)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await populate(conn, "org_gone")
        await populate(conn, "org_kept")
        gone_before = await rows_of(conn, "org_gone")
        kept_before = await rows_of(conn, "org_kept")
        # the test would prove nothing with an empty table
        assert all(
            gone_before[table]
            for table in (
                "events",
                "deliveries",
                "delivery_attempts",
                "audit_log",
                "idempotency_keys",
                "endpoints",
                "api_tokens",
                "mapping_jobs",
                "poison_messages",
            )
        )

        result = await erase_org(fresh_dsn, "org_gone")
        assert result.returncode == 0, result.stderr
        printed = json.loads(result.stdout)
        assert printed["erased"]["events"] == 12
        assert printed["erased"]["deliveryAttempts"] == 24

        assert {t: r for t, r in (await rows_of(conn, "org_gone")).items() if r} == {}
        assert await rows_of(conn, "org_kept") == kept_before
        audit = await conn.fetch(
            "SELECT details FROM audit_log WHERE action = 'organization.erased'"
            " AND organization_id IS NULL"
        )
        assert len(audit) == 1
        details = json.loads(audit[0]["details"])
        assert details["organizationId"] == "org_gone" and details["requestedBy"] == "cli"
        assert details["erased"] == printed["erased"]

        again = await erase_org(fresh_dsn, "org_gone")
        assert again.returncode != 0 and "no organization" in again.stderr
    finally:
        await conn.close()
