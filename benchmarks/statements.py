"""Per-statement PostgreSQL time in one bench window, from `pg_stat_statements`.

The extension is read only where the server already loads it (`shared_preload_libraries`);
the bench never changes the server's configuration. A window's figures are the difference of
two snapshots of the bench database's own statements, so other databases on a shared server
and earlier phases do not count. Planning time is reported apart from execution time: for the
dispatcher's and sender's array statements, planning is a per-statement cost that batching
amortises, and at low load (a batch of one) it can be most of their time.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from benchmarks.results import StatementRow, StatementsReport

_AVAILABLE = """
SELECT 'pg_stat_statements' = ANY (string_to_array(
    replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
"""

_SNAPSHOT = """
SELECT queryid, calls, total_plan_time, total_exec_time, rows,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""

Snapshot = dict[int, asyncpg.Record]


class StatementStats:
    """`await start()` and `await end()` around a window, then `report(deliveries)`; the
    report is None when the server does not load pg_stat_statements."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._enabled: bool | None = None
        self._before: Snapshot = {}
        self._after: Snapshot = {}

    async def enabled(self) -> bool:
        if self._enabled is None:
            self._enabled = bool(await self._pool.fetchval(_AVAILABLE))
            if self._enabled:
                await self._pool.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        return self._enabled

    async def start(self) -> StatementStats:
        if await self.enabled():
            self._before = await self._snapshot()
        return self

    async def end(self) -> None:
        if await self.enabled():
            self._after = await self._snapshot()

    def report(self, deliveries: int, top: int = 8) -> StatementsReport | None:
        if not self._enabled:
            return None
        per_k = 1000.0 / deliveries if deliveries else float("nan")
        rows = []
        for queryid, now in self._after.items():
            then = self._before.get(queryid)

            def grew(column: str, now: asyncpg.Record = now, then: Any = then) -> float:
                return now[column] - (then[column] if then else 0)

            calls = int(grew("calls"))
            if calls <= 0:
                continue
            plan, execute = grew("total_plan_time"), grew("total_exec_time")
            rows.append(
                StatementRow(
                    query=now["query"],
                    calls=calls,
                    rows_per_call=round(grew("rows") / calls, 1),
                    plan_ms_per_call=round(plan / calls, 3),
                    exec_ms_per_call=round(execute / calls, 3),
                    ms_per_1000_deliveries=round((plan + execute) * per_k, 1),
                )
            )
        rows.sort(key=lambda r: -r.ms_per_1000_deliveries)
        total = sum(r.ms_per_1000_deliveries for r in rows)
        return StatementsReport(statement_ms_per_1000_deliveries=round(total, 1), top=rows[:top])

    async def _snapshot(self) -> Snapshot:
        return {row["queryid"]: row for row in await self._pool.fetch(_SNAPSHOT)}
