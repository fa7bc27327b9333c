"""`python -m benchmarks.ordering_cost`: what ordered delivery's statements cost PostgreSQL
(libs/delivery/ordering.py), with a busy history in the tables.

A fresh database gets ROWS delivered events of an unordered endpoint, and LINES ordering keys
of an ordered endpoint, each a line of one PENDING head and HELD_PER_LINE HELD deliveries.
Each statement then runs ROUNDS times in a transaction rolled back (nothing changes between
rounds); the figures are PostgreSQL's own (EXPLAIN ANALYZE: time, buffers) and the wall time
of the statement seen from here.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import asyncpg

from benchmarks.common import cost_main, explain_cost, scratch_database
from libs.delivery.ordering import _LOCK_LINES, _LOCK_LINES_OF_KEYS, _PROMOTE, _STUCK_LINES

ROUNDS = 20

_FILL = """
INSERT INTO organizations (id, name, plan) VALUES ('org_cost', 'cost', 'PRO');
INSERT INTO endpoints (id, organization_id, kind, name, url_enc, url_masked, events, status,
                       secret_enc, secret_masked, config)
VALUES ('dest_plain', 'org_cost', 'DESTINATION', 'plain', '\\x00', 'https://x.test/',
        ARRAY['mapping.completed'], 'ACTIVE', '\\x00', 'whsec_••••', '{}'),
       ('dest_ordered', 'org_cost', 'DESTINATION', 'ordered', '\\x00', 'https://x.test/',
        ARRAY['mapping.completed'], 'ACTIVE', '\\x00', 'whsec_••••',
        '{"orderedDelivery": true}');
"""
_HISTORY = """
INSERT INTO events (id, organization_id, type, data, created_at, published_at, dispatched_at)
SELECT 'evt_0' || lpad(n::text, 12, '0'), 'org_cost', 'mapping.completed', '{"n": 1}',
       now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'
FROM generate_series(1, $1) AS n;
"""
_HISTORY_DELIVERIES = """
INSERT INTO deliveries (id, event_id, endpoint_id, organization_id, status, attempt_count)
SELECT 'del_0' || lpad(n::text, 12, '0'), 'evt_0' || lpad(n::text, 12, '0'), 'dest_plain',
       'org_cost', 'SUCCEEDED', 1
FROM generate_series(1, $1) AS n
"""
# Line l, position p (0 = its head): event evt_1<l><p>, key key-<l>.
_LINES = """
INSERT INTO events (id, organization_id, type, data, created_at, published_at, dispatched_at,
                    ordering_key)
SELECT 'evt_1' || lpad(l::text, 8, '0') || lpad(p::text, 4, '0'), 'org_cost',
       'mapping.completed', '{"n": 1}', now(), now(), now(), 'key-' || l
FROM generate_series(1, $1) AS l, generate_series(0, $2) AS p
"""
_LINE_DELIVERIES = """
INSERT INTO deliveries (id, event_id, endpoint_id, organization_id, status, ordering_key)
SELECT 'del_1' || lpad(l::text, 8, '0') || lpad(p::text, 4, '0'),
       'evt_1' || lpad(l::text, 8, '0') || lpad(p::text, 4, '0'), 'dest_ordered', 'org_cost',
       CASE WHEN p = 0 THEN 'PENDING' ELSE 'HELD' END, 'key-' || l
FROM generate_series(1, $1) AS l, generate_series(0, $2) AS p
"""
_END_HEAD = "UPDATE deliveries SET status = 'SUCCEEDED' WHERE id = 'del_1000000010000'"


async def measure(rows: int, lines: int, held_per_line: int) -> None:
    async with scratch_database("ordcost") as (_, conn):
        started = time.monotonic()
        await conn.execute(_FILL)
        await conn.execute(_HISTORY, rows)
        await conn.execute(_HISTORY_DELIVERIES, rows)
        await conn.execute(_LINES, lines, held_per_line)
        await conn.execute(_LINE_DELIVERIES, lines, held_per_line)
        await conn.execute("ANALYZE")
        print(
            f"filled {rows:,} delivered events and {lines:,} lines of"
            f" 1 + {held_per_line} in {time.monotonic() - started:.0f} s"
        )
        one = (["dest_ordered"], ["key-1"])
        await _report(conn, "lock one line", _LOCK_LINES, *one)
        await _report(conn, "release, head in flight (nothing moves)", _PROMOTE, *one)
        await _report(conn, "release, head ended (one promoted)", _PROMOTE, *one, _END_HEAD)
        await _report(
            conn, "a keyed event's lines, none HELD", _LOCK_LINES_OF_KEYS, ["org_cost"], ["x"]
        )
        await _report(
            conn,
            "a keyed event's lines, one HELD",
            _LOCK_LINES_OF_KEYS,
            ["org_cost"],
            ["key-1"],
        )
        await _report(conn, "reconciler: stuck lines, none", _STUCK_LINES, 0.0, 500)


async def _report(conn: asyncpg.Connection, what: str, sql: str, *args: Any) -> None:
    """`sql` with the arguments in `args` (a trailing str: a statement to run first)."""
    before = args[-1] if args and isinstance(args[-1], str) else None
    params = args[:-1] if before else args
    walls: list[float] = []
    for _ in range(ROUNDS + 1):
        transaction = conn.transaction()
        await transaction.start()
        try:
            if before:
                await conn.execute(before)
            started = time.perf_counter()
            found = await conn.fetch(sql, *params)
            walls.append((time.perf_counter() - started) * 1000)
            cost = await explain_cost(conn, sql, *params)
        finally:
            await transaction.rollback()
    print(f"{what}: {len(found)} rows; wall p50 {statistics.median(walls[1:]):.2f} ms; {cost}")


def main() -> None:
    cost_main(__doc__, measure, rows=200_000, lines=1_000, held_per_line=10)


if __name__ == "__main__":
    main()
