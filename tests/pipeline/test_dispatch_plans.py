"""The plans PostgreSQL picks for statements that find rows by id once the tables are like a
busy day's: many rows, few PENDING when it was last analyzed, and the partial
indexes on PENDING full of entries whose deliveries have since ended (vacuum has not come
yet). Generic plans, as the workers' prepared statements get (real PostgreSQL, a database of
its own: the plan depends on the statistics the test sets up).
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from libs.delivery import repository as delivery
from libs.infra.db.migrate import migrate
from services.dispatcher import sql
from tests.retention.history import insert_day, make_org

ENDED = 20_000  # deliveries of the day that ended long ago (analyzed)
JUST_ENDED = 20_000  # PENDING when the table was analyzed, ended since: dead index entries


async def _busy_day(conn: asyncpg.Connection) -> None:
    endpoint_id = await make_org(conn, "org_plans")
    today = datetime.now(UTC).date()
    await insert_day(conn, "org_plans", endpoint_id, today, ENDED)
    await conn.execute("ANALYZE")
    just = await insert_day(conn, "org_plans", endpoint_id, today, JUST_ENDED, status="PENDING")
    # Each event was undispatched for a moment, then dispatched; each delivery PENDING, then
    # ended: the partial indexes keep the entries until vacuum.
    for change in (
        "UPDATE events SET dispatched_at = NULL WHERE id = ANY ($1::text[])",
        "UPDATE events SET dispatched_at = now() WHERE id = ANY ($1::text[])",
    ):
        await conn.execute(change, just.events)
    await conn.execute(
        "UPDATE deliveries SET status = 'SUCCEEDED' WHERE id = ANY ($1::text[])", just.deliveries
    )


async def _generic_plan(conn: asyncpg.Connection, name: str, sql: str) -> list[str]:
    await conn.execute(f"PREPARE {name} AS {sql}")
    parameters = await conn.fetchval(
        "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = $1", name
    )
    nulls = ", ".join(["NULL"] * parameters)
    return [row[0] for row in await conn.fetch(f"EXPLAIN EXECUTE {name} ({nulls})")]


# Statements that find a batch's rows by id among rows in a state a partial index is built
# on (events not dispatched, deliveries PENDING). PREPARE is not here: its count of an
# organization's PENDING deliveries is what such an index is for. Not here yet: under this
# test's statistics (the partial indexes analyzed nearly empty) the single-row statements
# (mark dead, park, postpone, pending steps), FINISH, DROP and the attempt record also scan a
# partial index, by Index Scan rather than BitmapAnd; their filters are on the rows they
# lock or update, where a fence would change what a concurrent change does, and no
# measurement has shown their cost yet (issue 21's note, session 19).
BY_ID = {
    "dispatcher: deliveries": sql.INSERT_DELIVERIES,
    "attempt: load": delivery._LOAD,
}


async def test_statements_that_find_rows_by_id_never_walk_a_partial_index(
    fresh_dsn: str,
) -> None:
    """Each goes through the rows' keys only. The deliveries statement once also went through
    the PENDING partial index (a BitmapAnd): every event of every batch then walked the
    whole index, dead entries too, and after make bench's fan-out phase PostgreSQL spent more
    than a core on it; the latency phase that followed never caught up (BENCHMARKS.md,
    "Session 19")."""
    await migrate(fresh_dsn)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await _busy_day(conn)
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        # NULL arguments would prune every partition at run time, and the plan with them
        await conn.execute("SET enable_partition_pruning = off")
        plans = {
            name: await _generic_plan(conn, f"statement_{n}", text)
            for n, (name, text) in enumerate(BY_ID.items())
        }
    finally:
        await conn.close()
    walking = {
        name: [line.strip() for line in plan if _walks_a_partial_index(line)]
        for name, plan in plans.items()
    }
    assert {name: lines for name, lines in walking.items() if lines} == {}
    # and the check sees an index scan at all (the statements do read by key)
    assert all(any("Index" in line for line in plan) for plan in plans.values())


KEYS = ("_pkey", "_event_id_endpoint_id_key", "_delivery_id_attempt_number_even_key")


def _walks_a_partial_index(line: str) -> bool:
    if "BitmapAnd" in line:
        return True
    scanned = " on events_p" in line or " on deliveries_p" in line
    return "Index" in line and scanned and not any(key in line for key in KEYS)
