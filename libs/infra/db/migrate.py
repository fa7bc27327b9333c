"""Versioned migrations: `migrations/NNNN_name.sql`, each applied once, in order.

An advisory lock makes concurrent `hookpost migrate` runs (several pods starting) safe.
"""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)
_LOCK_KEY = 0x686F6F6B  # "hook"


def _migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("libs.infra.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migration_sql(version: int) -> str:
    """The text of migration `version` (a benchmark rebuilding an older schema borrows from it)."""
    [sql] = [sql for number, _, sql in _migration_files() if number == version]
    return sql


async def ensure_database(dsn: str) -> None:
    """Create the target database when the server is there but the database is not."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        base, _, name = dsn.rpartition("/")
        name = name.split("?", 1)[0]
        admin = await asyncpg.connect(f"{base}/postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            pass
        finally:
            await admin.close()
    else:
        await conn.close()


async def migrate(dsn: str, *, up_to: int | None = None) -> list[str]:
    """Apply what is missing (up to version `up_to`, when given: the tests of a migration
    load rows with the schema before it); return the names applied now."""
    await ensure_database(dsn)
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in _migration_files():
            if version in done or (up_to is not None and version > up_to):
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            log.info("applied migration %s", name)
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        await conn.close()
    return applied_now
