"""What killed test runs left on the shared servers, swept before a new run starts.

A test run names its database and broker prefix `hookpost_test_<run id>` and removes both as
it ends; a run that is killed leaves them. Each of its quorum queues keeps about 3 of
RabbitMQ's file handles (a node at 1,024 descriptors has 927, sockets included), so leaks
add up across runs until the broker accepts no connection (BENCHMARKS.md, "Session 14").

A run in progress holds a connection to PostgreSQL named after it (`presence`) from its start
to its end, and its database's pool once its first test needs it; a run with neither is
stale. Queues are listed with `rabbitmqctl` (the local node only); without it, only
databases are swept.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import aio_pika
import asyncpg

PREFIX = "hookpost_test_"
TEST_RUN = re.compile(r"^hookpost_test_([0-9a-f]{8})(?:[._]|$)")


def run_of(name: str) -> str | None:
    """The run id a database, queue, exchange or connection name belongs to, if any."""
    found = TEST_RUN.match(name)
    return found.group(1) if found else None


async def presence(admin_dsn: str, run: str) -> asyncpg.Connection:
    """The connection that says `run` is in progress: hold it open until the run ends."""
    return await asyncpg.connect(admin_dsn, server_settings={"application_name": PREFIX + run})


def _broker_names(kind: str) -> list[str]:
    """`rabbitmqctl list_<kind> name`: the local node's names of test runs."""
    if shutil.which("rabbitmqctl") is None:
        return []
    listed = subprocess.run(
        ["rabbitmqctl", "-q", f"list_{kind}", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [name for name in map(str.strip, listed.stdout.splitlines()) if run_of(name)]


async def sweep(amqp_url: str, admin_dsn: str, own_run: str) -> list[str]:
    """Remove the stale runs' queues, exchanges and databases; the run ids removed."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        databases = [
            row["datname"]
            for row in await admin.fetch(
                "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", PREFIX
            )
        ]
        live = {
            run_of(row["name"] or "")
            for row in await admin.fetch(
                "SELECT application_name AS name FROM pg_stat_activity"
                " UNION SELECT datname FROM pg_stat_activity"
            )
        }
        queues, exchanges = _broker_names("queues"), _broker_names("exchanges")
        named = {run_of(name) for name in databases + queues + exchanges}
        stale = {run for run in named - live - {own_run} if run is not None}
        await _delete_broker_objects(amqp_url, stale, queues, exchanges)
        for name in databases:
            if run_of(name) in stale:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    return sorted(stale)


async def _delete_broker_objects(
    amqp_url: str, stale: set[str], queues: list[str], exchanges: list[str]
) -> None:
    if not stale:
        return
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in queues:
            if run_of(name) in stale:
                await channel.queue_delete(name)
        for name in exchanges:
            if run_of(name) in stale:
                await channel.exchange_delete(name)
