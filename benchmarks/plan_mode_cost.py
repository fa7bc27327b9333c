"""`python -m benchmarks.plan_mode_cost`: what the hot statements cost with a month of day
partitions, under each `plan_cache_mode` (issue 21).

A fresh database gets DAYS past days of history (PER_DAY events, one delivery and one attempt
each) plus the week ahead that maintenance creates, so each history table has ~40 partitions
as in production. Then, per mode, on a connection of its own (asyncpg prepares every
statement, as the services do): the dispatcher's batch (`prepare` + `insert_deliveries`,
which also finishes it) for new events, the engine's `_LOAD` of their deliveries and its
`_RECORD` of one attempt each (rolled back), at a batch of 1 and of BATCH; and the planning
and execution time PostgreSQL reports for `_LOAD` (EXPLAIN ANALYZE EXECUTE of a prepared one).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg

from benchmarks import history
from benchmarks.common import cost_main, scratch_database
from libs.delivery.repository import _LOAD, _RECORD
from libs.domain.ids import IdPrefix, new_id
from libs.infra.broker.messages import EventMessage
from libs.infra.db import partitions
from libs.infra.db.pool import create_pool
from services.dispatcher.repository import DispatcherRepository
from services.dispatcher.rows import PlannedDeliveries

MODES = ("auto", "force_custom_plan", "force_generic_plan")
ROUNDS = 60
BATCH = 50
ORG, ENDPOINT, TYPE = "org_plan", "dest_plan", "mapping.completed"

_SETUP = history.owner(ORG, ENDPOINT, TYPE)
_DAY = history.day(ORG, ENDPOINT, TYPE, attempts=1, keyed=True)


class _Rollback(Exception):
    pass


async def _dispatch(repo: DispatcherRepository, n: int) -> list[tuple[str, str]]:
    """One dispatcher batch of n new events, one delivery each; (delivery id, event id)."""
    now = datetime.now(UTC)
    events = [
        EventMessage(id=new_id(IdPrefix.EVENT), organization_id=ORG, type=TYPE, created_at=now)
        for _ in range(n)
    ]
    async with repo.event_locks() as locks:
        await locks.prepare(events, 1_000_000)
        planned = [PlannedDeliveries(e.id, [new_id(IdPrefix.DELIVERY)], [ENDPOINT]) for e in events]
        found = await locks.insert_deliveries(planned, finished=[e.id for e in events])
    return [(d.id, event_id) for event_id, ds in found.items() for d in ds or ()]


async def _record(conn: asyncpg.Connection, batch: list[tuple[str, str]]) -> None:
    now = datetime.now(UTC)
    n = len(batch)
    try:
        async with conn.transaction():
            await conn.fetch(
                _RECORD,
                [new_id(IdPrefix.DELIVERY) for _ in batch],
                [d for d, _ in batch],
                [1] * n,
                [now] * n,
                [20] * n,
                [200] * n,
                [None] * n,
                [""] * n,
                [True] * n,
                ["SUCCEEDED"] * n,
                [None] * n,
                [e for _, e in batch],
                [False] * n,
            )
            raise _Rollback
    except _Rollback:
        pass


def _ms(walls: list[float]) -> str:
    walls = sorted(walls)
    return f"p50 {statistics.median(walls):.2f} p95 {walls[int(len(walls) * 0.95)]:.2f} ms"


async def _timed(calls: int, step: Callable[[], Awaitable[None]]) -> list[float]:
    walls = []
    for _ in range(calls):
        started = time.perf_counter()
        await step()
        walls.append((time.perf_counter() - started) * 1000)
    return walls[5:]  # past the custom plans PostgreSQL makes before choosing


async def _explain_load(conn: asyncpg.Connection, batch: list[tuple[str, str]]) -> str:
    await conn.execute(f"PREPARE load_x AS {_LOAD}")
    try:
        args = (
            "ARRAY[" + ",".join(f"'{d}'" for d, _ in batch) + "]::text[]",
            "ARRAY[" + ",".join(f"'{e}'" for _, e in batch) + "]::text[]",
            "ARRAY[" + ",".join("1" for _ in batch) + "]::int[]",
        )
        plans = []
        for _ in range(8):  # the 6th on may be generic under `auto`
            plans.append(
                await conn.fetchval(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE load_x({', '.join(args)})"
                )
            )
        last = plans[-1]
        plan = (json.loads(last) if isinstance(last, str) else last)[0]
        return f"planning {plan['Planning Time']:.2f} ms, execution {plan['Execution Time']:.2f} ms"
    finally:
        await conn.execute("DEALLOCATE load_x")


async def _measure_mode(dsn: str, mode: str) -> None:
    pool = await create_pool(
        dsn, 1, 1, reset_session=False, server_settings={"plan_cache_mode": mode}
    )
    repo = DispatcherRepository(pool)
    try:
        made: list[list[tuple[str, str]]] = []
        for n in (1, BATCH):
            made = []

            async def dispatch(n: int = n, made: list[list[tuple[str, str]]] = made) -> None:
                made.append(await _dispatch(repo, n))

            dispatched = await _timed(ROUNDS, dispatch)
            batches = iter(made)

            async def load(n: int = n, batches: Iterator[list[tuple[str, str]]] = batches) -> None:
                batch = next(batches)
                async with pool.acquire() as c:
                    await c.fetch(_LOAD, [d for d, _ in batch], [e for _, e in batch], [1] * n)

            loaded = await _timed(ROUNDS, load)

            again = iter(made)

            async def record(batches: Iterator[list[tuple[str, str]]] = again) -> None:
                async with pool.acquire() as c:
                    await _record(c, next(batches))

            recorded = await _timed(ROUNDS, record)
            print(
                f"{mode:19} batch {n:2}: dispatch {_ms(dispatched)}; load {_ms(loaded)};"
                f" record {_ms(recorded)}"
            )
        async with pool.acquire() as c:
            print(f"{mode:19} _LOAD of {BATCH}: {await _explain_load(c, made[-1])}")
    finally:
        await pool.close()


async def measure(days: int, per_day: int) -> None:
    async with scratch_database("plans") as (env, conn):
        await conn.execute(_SETUP)
        today = await conn.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
        await partitions.maintain(conn, days + 1, today)
        for age in range(days, 0, -1):
            day = today - timedelta(days=age)
            for table in partitions.TABLES:
                await conn.fetchval("SELECT hookpost_create_day_partition($1, $2)", table, day)
            await conn.execute(_DAY, history.midnight(day), per_day)
        await conn.execute("ANALYZE")
        parts = len(await partitions.day_partitions(conn, "deliveries"))
        print(f"{days} days x {per_day:,} events; {parts} day partitions per history table")
        for mode in MODES:
            await _measure_mode(env.dsn, mode)


def main() -> None:
    cost_main(__doc__, measure, days=31, per_day=2_000)


if __name__ == "__main__":
    main()
