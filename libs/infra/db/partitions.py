"""Day partitions of the history tables (migration 0007): created a week ahead, dropped whole
once past retention, never emptied by row-by-row DELETE.

events, deliveries and delivery_attempts are partitioned by their event's ULID day and leave
together (one transaction per day), audit_log by created_at, idempotency_keys by the day a key
is reserved for (kept two days: a key is honoured for 24 hours, migration 0007). Every
dispatcher runs `PartitionMaintenance` at start and hourly; an advisory lock lets one replica
at a time do a round, the others skip it. Which rows of the DEFAULT partitions (ids that are
not ULIDs, clocks far ahead: normally none) are past retention is the one row-by-row delete,
of tables meant to stay near empty; their size is a metric.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import asyncpg
from prometheus_client import Counter, Gauge

from libs.infra.periodic import Periodic

log = logging.getLogger("hookpost.partitions")

# One event day: dropped together, children first.
HISTORY = ("delivery_attempts", "deliveries", "events")
TABLES = (*HISTORY, "audit_log", "idempotency_keys")
AHEAD_DAYS = 7
# Keys are looked up for today (and yesterday, just after midnight): two days is plenty.
IDEMPOTENCY_KEEP_DAYS = 2
# How long a DROP or CREATE may wait for its table's lock before giving up until the next
# round: both take an ACCESS EXCLUSIVE lock on the parent, and a waiting one queues every
# later query of that table behind it.
LOCK_TIMEOUT = "2s"
_LOCK_KEY = 0x686F6F70  # "hoop": one maintenance round at a time across replicas
_PARTITION = re.compile(r"^(?P<parent>[a-z_]+)_p(?P<day>\d{8})$")
# The column of each default partition that says how old a row is.
_AGE_COLUMN = {
    "events": "created_at",
    "deliveries": "created_at",
    "delivery_attempts": "attempted_at",
    "audit_log": "created_at",
    "idempotency_keys": "created_at",
}

PARTITIONS = Gauge("hookpost_partitions", "Day partitions per history table", ["table"])
PARTITIONS_CREATED = Counter(
    "hookpost_partitions_created_total", "Day partitions created ahead", ["table"]
)
PARTITIONS_DROPPED = Counter(
    "hookpost_partitions_dropped_total", "Day partitions dropped past retention", ["table"]
)
DEFAULT_ROWS = Gauge(
    "hookpost_partition_default_rows",
    "Rows in a history table's DEFAULT partition (should stay near 0)",
    ["table"],
)
ROUNDS = Counter(
    "hookpost_partition_maintenance_total",
    "Partition maintenance rounds, by outcome",
    ["outcome"],  # done, skipped (another replica holds the lock), failed
)


@dataclass
class MaintenanceReport:
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # left for the next round (lock timeout)
    default_rows_deleted: int = 0
    skipped: bool = False  # another replica was doing a round


def utc_today() -> date:
    return datetime.now(UTC).date()


async def day_partitions(conn: asyncpg.Connection, parent: str) -> dict[date, str]:
    """The day partitions of `parent`, by day."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = $1::regclass",
        parent,
    )
    found: dict[date, str] = {}
    for row in rows:
        match = _PARTITION.match(row["relname"])
        if match and match["parent"] == parent:
            found[datetime.strptime(match["day"], "%Y%m%d").date()] = row["relname"]
    return found


async def maintain(
    conn: asyncpg.Connection, retention_days: int, today: date | None = None
) -> MaintenanceReport:
    """One round: create the coming days, drop the days past retention (history rows older
    than `retention_days` full days before `today`). Skipped when another session holds the
    maintenance lock. `conn` is a connection of its own (session settings, a session lock)."""
    today = today or utc_today()
    report = MaintenanceReport()
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
        report.skipped = True
        return report
    try:
        await conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        await _create_ahead(conn, today, report)
        await _drop_past(conn, today - timedelta(days=retention_days), today, report)
        report.default_rows_deleted = await _trim_defaults(conn, today, retention_days)
        for table in TABLES:
            PARTITIONS.labels(table=table).set(len(await day_partitions(conn, table)))
            DEFAULT_ROWS.labels(table=table).set(
                await conn.fetchval(f"SELECT count(*) FROM {table}_default")
            )
    finally:
        await conn.execute("RESET lock_timeout")
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return report


async def _create_ahead(conn: asyncpg.Connection, today: date, report: MaintenanceReport) -> None:
    for offset in range(0, AHEAD_DAYS + 1):
        day = today + timedelta(days=offset)
        for table in TABLES:
            try:
                created = await conn.fetchval(
                    "SELECT hookpost_create_day_partition($1, $2)", table, day
                )
            except asyncpg.LockNotAvailableError:
                report.busy.append(f"{table}@{day}")
                continue
            if created:
                PARTITIONS_CREATED.labels(table=table).inc()
                report.created.append(f"{table}_p{day:%Y%m%d}")


async def _drop_past(
    conn: asyncpg.Connection, cutoff: date, today: date, report: MaintenanceReport
) -> None:
    """Drop the partitions of days before `cutoff` (idempotency keys: before their own)."""
    history = [await day_partitions(conn, table) for table in HISTORY]
    days = sorted({day for partitions in history for day in partitions if day < cutoff})
    for day in days:
        names = [partitions[day] for partitions in history if day in partitions]
        await _drop(conn, names, report)
    audit = await day_partitions(conn, "audit_log")
    for day in sorted(d for d in audit if d < cutoff):
        await _drop(conn, [audit[day]], report)
    keys = await day_partitions(conn, "idempotency_keys")
    key_cutoff = today - timedelta(days=IDEMPOTENCY_KEEP_DAYS)
    for day in sorted(d for d in keys if d < key_cutoff):
        await _drop(conn, [keys[day]], report)


async def _drop(conn: asyncpg.Connection, names: list[str], report: MaintenanceReport) -> None:
    try:
        async with conn.transaction():
            for name in names:
                await conn.execute(f'DROP TABLE "{name}"')
    except asyncpg.LockNotAvailableError:
        log.warning("partitions busy, dropped next round", extra={"partitions": names})
        report.busy.extend(names)
        return
    for name in names:
        match = _PARTITION.match(name)
        assert match is not None
        PARTITIONS_DROPPED.labels(table=match["parent"]).inc()
    report.dropped.extend(names)
    log.info("dropped partitions past retention", extra={"partitions": names})


async def _trim_defaults(conn: asyncpg.Connection, today: date, retention_days: int) -> int:
    cutoff = datetime.combine(today - timedelta(days=retention_days), datetime.min.time(), UTC)
    deleted = 0
    for table in TABLES:
        status = await conn.execute(
            f"DELETE FROM {table}_default WHERE {_AGE_COLUMN[table]} < $1", cutoff
        )
        deleted += int(status.split()[-1])
    return deleted


class PartitionMaintenance:
    """`maintain` at start and every `interval_s`, on a connection of its own per round."""

    def __init__(
        self,
        dsn: str,
        retention_days: int,
        interval_s: float,
        today: Callable[[], date] = utc_today,
    ) -> None:
        self._dsn = dsn
        self._retention_days = retention_days
        self._today = today
        self._loop = Periodic("partition-maintenance", interval_s, self.run_once)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def run_once(self) -> MaintenanceReport:
        conn = await asyncpg.connect(self._dsn)
        try:
            report = await maintain(conn, self._retention_days, self._today())
        except Exception:
            ROUNDS.labels(outcome="failed").inc()
            raise
        finally:
            await conn.close()
        ROUNDS.labels(outcome="skipped" if report.skipped else "done").inc()
        if report.created or report.dropped or report.busy or report.default_rows_deleted:
            log.info(
                "partition maintenance",
                extra={  # (`created` is a LogRecord attribute of its own)
                    "partitions_created": report.created,
                    "partitions_dropped": report.dropped,
                    "partitions_busy": report.busy,
                    "default_rows_deleted": report.default_rows_deleted,
                },
            )
        return report
