"""What killed test and bench runs left is swept, and a run in progress is not
(harness/stale_runs.py), on the real servers: stale runs and live ones of both kinds are
planted side by side."""

from __future__ import annotations

import uuid

import aio_pika
import asyncpg
import pytest

from harness import stale_runs
from harness.broker import exists
from tests.conftest import RUN_ID


def _planted(kind: str) -> str:
    return stale_runs.run_name(kind, uuid.uuid4().hex[:8])


async def test_killed_runs_queues_exchanges_and_databases_go_and_live_runs_stay(
    test_env: dict[str, str],
) -> None:
    url = test_env["HOOKPOST_AMQP_URL"]
    admin_dsn = test_env["HOOKPOST_DATABASE_URL"].rpartition("/")[0] + "/postgres"
    stale = [_planted("test"), _planted("bench")]
    live = [_planted("test"), _planted("bench")]
    own = stale_runs.run_name("test", RUN_ID)
    admin = await asyncpg.connect(admin_dsn)
    connection = await aio_pika.connect(url)
    presences = [await stale_runs.presence(admin_dsn, run) for run in live]
    try:
        channel = await connection.channel()
        for run in stale + live:
            await admin.execute(f'CREATE DATABASE "{run}"')
            await channel.declare_queue(f"{run}_pipe.sender", durable=True)
            await channel.declare_exchange(f"{run}.events", durable=True)

        swept = await stale_runs.sweep(url, admin_dsn, own)

        assert set(stale) <= set(swept) and not set(swept) & {*live, own}
        databases = {row["datname"] for row in await admin.fetch("SELECT datname FROM pg_database")}
        for run in stale:
            assert not await exists(url, "queue", f"{run}_pipe.sender")
            assert not await exists(url, "exchange", f"{run}.events")
            assert run not in databases
        for run in live:
            assert await exists(url, "queue", f"{run}_pipe.sender")
            assert await exists(url, "exchange", f"{run}.events")
            assert run in databases
    finally:
        channel = await connection.channel()
        for run in stale + live:
            await channel.queue_delete(f"{run}_pipe.sender")
            await channel.exchange_delete(f"{run}.events")
            await admin.execute(f'DROP DATABASE IF EXISTS "{run}" WITH (FORCE)')
        for presence in presences:
            await presence.close()
        await connection.close()
        await admin.close()


@pytest.mark.parametrize("name", ["hookpost_test_", "hookpost_prod_0123abcd", "hookpost"])
def test_only_names_of_test_and_bench_runs_are_runs(name: str) -> None:
    assert stale_runs.run_of(name) is None


def test_a_runs_objects_name_their_run() -> None:
    assert stale_runs.run_of("hookpost_bench_0123abcd_pipe.sender") == "hookpost_bench_0123abcd"
    assert stale_runs.run_of("hookpost_test_0123abcd.events") == "hookpost_test_0123abcd"
    with pytest.raises(ValueError):
        stale_runs.run_name("prod", "0123abcd")
