"""What killed test runs left is swept, and a run in progress is not (harness/stale_runs.py),
on the real servers: a stale run and a live one are planted side by side."""

from __future__ import annotations

import uuid

import aio_pika
import asyncpg

from harness import stale_runs
from harness.broker import exists
from tests.conftest import RUN_ID


async def test_a_killed_runs_queues_exchanges_and_database_go_and_a_live_runs_stay(
    test_env: dict[str, str],
) -> None:
    url = test_env["HOOKPOST_AMQP_URL"]
    admin_dsn = test_env["HOOKPOST_DATABASE_URL"].rpartition("/")[0] + "/postgres"
    stale, live = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    admin = await asyncpg.connect(admin_dsn)
    connection = await aio_pika.connect(test_env["HOOKPOST_AMQP_URL"])
    presence = await stale_runs.presence(admin_dsn, live)
    try:
        await admin.execute(f'CREATE DATABASE "hookpost_test_{stale}"')
        channel = await connection.channel()
        for run in (stale, live):
            await channel.declare_queue(f"hookpost_test_{run}_pipe.sender", durable=True)
            await channel.declare_exchange(f"hookpost_test_{run}.events", durable=True)

        swept = await stale_runs.sweep(test_env["HOOKPOST_AMQP_URL"], admin_dsn, RUN_ID)

        assert stale in swept and live not in swept and RUN_ID not in swept
        assert not await exists(url, "queue", f"hookpost_test_{stale}_pipe.sender")
        assert not await exists(url, "exchange", f"hookpost_test_{stale}.events")
        databases = await admin.fetch("SELECT datname FROM pg_database")
        assert f"hookpost_test_{stale}" not in {row["datname"] for row in databases}
        assert await exists(url, "queue", f"hookpost_test_{live}_pipe.sender")
        assert await exists(url, "exchange", f"hookpost_test_{live}.events")
    finally:
        channel = await connection.channel()
        await channel.queue_delete(f"hookpost_test_{live}_pipe.sender")
        await channel.exchange_delete(f"hookpost_test_{live}.events")
        await admin.execute(f'DROP DATABASE IF EXISTS "hookpost_test_{stale}" WITH (FORCE)')
        await presence.close()
        await connection.close()
        await admin.close()
