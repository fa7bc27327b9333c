"""What killed test and bench runs left on the shared servers, swept before a new run starts.

A run names its database and broker prefix after itself, `hookpost_test_<run id>` (make
test) or `hookpost_bench_<run id>` (each stack of make bench and the probe), and removes both
as it ends; a run that is killed leaves them. Each of its quorum queues keeps about 3 of
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

RUN = re.compile(r"^(hookpost_(?:test|bench)_[0-9a-f]{8})(?:[._]|$)")


def run_name(kind: str, run_id: str) -> str:
    """What a run of `kind` ("test" or "bench") names its database and broker prefix."""
    name = f"hookpost_{kind}_{run_id}"
    if run_of(name) != name:
        raise ValueError(f"not a run name the sweep knows: {name!r}")
    return name


def run_of(name: str) -> str | None:
    """The run a database, queue, exchange or connection name belongs to, if any."""
    found = RUN.match(name)
    return found.group(1) if found else None


async def presence(admin_dsn: str, run: str) -> asyncpg.Connection:
    """The connection that says `run` (a `run_name`) is in progress: hold it open until the
    run ends."""
    return await asyncpg.connect(admin_dsn, server_settings={"application_name": run})


def _broker_names(kind: str) -> list[str]:
    """`rabbitmqctl list_<kind> name`: the local node's names of runs."""
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
    """Remove the stale runs' queues, exchanges and databases; the runs removed."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        databases = [
            row["datname"]
            for row in await admin.fetch(
                "SELECT datname FROM pg_database WHERE datname ~ '^hookpost_(test|bench)_'"
            )
            if run_of(row["datname"])
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
