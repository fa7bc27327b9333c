"""`python -m benchmarks.reconciler_cost`: what one reconciler pass costs PostgreSQL with a
million rows in the tables (RELIABILITY.md).

A fresh database gets ROWS events, one delivery and one attempt each, as a busy day leaves
them: nearly all dispatched and SUCCEEDED, PENDING_SHARE still pending (due in the future),
and OVERDUE of them overdue. Then the pass's two claims run, as the reconciler runs them,
ROUNDS times each, first with OVERDUE rows to re-drive, then with none (the usual pass); the
figures are PostgreSQL's own (EXPLAIN ANALYZE: buffers, time) plus the wall time of the claim
seen from here.
"""

from __future__ import annotations

import statistics
import time

import asyncpg

from benchmarks.common import cost_main, explain_cost, scratch_database
from services.dispatcher import overdue

ROUNDS = 20

_ORG = """
INSERT INTO organizations (id, name, plan) VALUES ('org_cost', 'cost', 'PRO')
"""
_ENDPOINT = """
INSERT INTO endpoints (id, organization_id, kind, name, url_enc, url_masked, events, status,
                       secret_enc, secret_masked)
VALUES ('dest_cost', 'org_cost', 'DESTINATION', 'cost', '\\x00', 'https://x.test/',
        ARRAY['mapping.completed'], 'ACTIVE', '\\x00', 'whsec_••••')
"""
# 1 event in 1,000 still undispatched, a day old (overdue: what a pass re-drives); ids are
# ULIDs of that day, so every row is in one day partition (migration 0007)
_EVENTS = """
INSERT INTO events (id, organization_id, type, data, created_at, published_at, dispatched_at)
SELECT 'evt_' || hookpost_ulid_prefix(current_date - 1) || lpad(n::text, 16, '0'),
       'org_cost', 'mapping.completed', '{"n": 1}',
       now() - interval '1 day', now() - interval '1 day',
       CASE WHEN n % 1000 = 0 THEN NULL ELSE now() - interval '1 day' END
FROM generate_series(1, $1) AS n
"""
# 1 delivery in $2 PENDING, of which 1 in $3 overdue (the rest due in ten minutes)
_DELIVERIES = """
INSERT INTO deliveries (id, event_id, endpoint_id, organization_id, status, attempt_count,
                        next_attempt_at, created_at)
SELECT 'del_' || lpad(n::text, 12, '0'),
       'evt_' || hookpost_ulid_prefix(current_date - 1) || lpad(n::text, 16, '0'),
       'dest_cost',
       'org_cost', CASE WHEN n % $2 = 0 THEN 'PENDING' ELSE 'SUCCEEDED' END, 1,
       CASE WHEN n % $2 <> 0 THEN NULL
            WHEN n % ($2 * $3) = 0 THEN now() - interval '1 hour'
            ELSE now() + interval '10 minutes' END,
       now() - interval '1 day'
FROM generate_series(1, $1) AS n
"""
_ON_TIME = """
UPDATE events SET published_at = now() WHERE dispatched_at IS NULL;
UPDATE deliveries SET next_attempt_at = now() + interval '10 minutes' WHERE status = 'PENDING';
ANALYZE;
"""
_ATTEMPTS = """
INSERT INTO delivery_attempts (id, delivery_id, event_id, attempt_number, attempted_at,
                               duration_ms, http_status, succeeded)
SELECT 'att_' || lpad(n::text, 12, '0'), 'del_' || lpad(n::text, 12, '0'),
       'evt_' || hookpost_ulid_prefix(current_date - 1) || lpad(n::text, 16, '0'), 1,
       now() - interval '1 day', 20, 200, true
FROM generate_series(1, $1) AS n
"""


async def measure(rows: int, pending_every: int, overdue_every: int) -> None:
    async with scratch_database("cost") as (_, conn):
        started = time.monotonic()
        await conn.execute(_ORG)
        await conn.execute(_ENDPOINT)
        await conn.execute(_EVENTS, rows)
        await conn.execute(_DELIVERIES, rows, pending_every, overdue_every)
        await conn.execute(_ATTEMPTS, rows)
        await conn.execute("ANALYZE")
        took = time.monotonic() - started
        print(f"filled {rows:,} events, deliveries and attempts each in {took:.0f} s")
        await _report(conn, "overdue events", overdue.EVENTS.claim_sql, 60.0)
        await _report(conn, "overdue deliveries", overdue.DELIVERIES.claim_sql, 300.0)
        # The usual pass: nothing is overdue (the same unfinished rows, all on time).
        await conn.execute(_ON_TIME)
        await _report(conn, "idle pass, events", overdue.EVENTS.claim_sql, 60.0)
        await _report(conn, "idle pass, deliveries", overdue.DELIVERIES.claim_sql, 300.0)


async def _report(conn: asyncpg.Connection, what: str, sql: str, after_s: float) -> None:
    walls: list[float] = []
    for _ in range(ROUNDS):
        async with conn.transaction():
            started = time.perf_counter()
            found = await conn.fetch(sql, after_s, 500)
            walls.append((time.perf_counter() - started) * 1000)
    async with conn.transaction():
        cost = await explain_cost(conn, sql, after_s, 500)
    print(
        f"{what}: {len(found)} rows claimed; wall p50 {statistics.median(walls):.2f} ms,"
        f" max {max(walls):.2f} ms over {ROUNDS}; {cost}"
    )


def main() -> None:
    cost_main(
        __doc__,
        measure,
        rows=1_000_000,
        pending_every=(100, "1 in N deliveries"),
        overdue_every=(10, "1 in N pending ones"),
    )


if __name__ == "__main__":
    main()
