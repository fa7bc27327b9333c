"""One asyncpg pool per process, with JSON columns decoded to Python objects."""

from __future__ import annotations

import asyncpg
import orjson

# What a repository function runs on: a connection (inside a transaction) or the pool.
Executor = asyncpg.Connection | asyncpg.Pool

# How long a prepared statement (and the plan PostgreSQL cached for it) lives, in seconds.
# After five executions PostgreSQL may keep a generic plan, made for the table sizes of that
# moment, until the statement is deallocated or an ANALYZE invalidates it. The hot statements
# join `unnest($1)` arrays to tables that start empty and grow by thousands of rows a minute;
# on a server that never ANALYZEs them (autovacuum off, as on the CI machine) the sender's
# load kept a hash join over a sequential scan of `deliveries` chosen when the table was
# tiny, and its cost grew from 0.5 to 5.8 ms per call within one `make bench` run
# (pg_stat_statements and auto_explain, BENCHMARKS.md, round 4). Re-preparing every 10 s
# bounds how stale a plan can be; it costs five custom plans per statement per connection.
# asyncpg's default is 300 s.
STATEMENT_LIFETIME_S = 10


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name,
            encoder=lambda value: orjson.dumps(value).decode("utf-8"),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without a reset query: asyncpg still rolls back an open transaction first."""


# What a statement raises when PostgreSQL has ended its session (a restart, an admin's
# pg_terminate_backend). A restart ends every session at once, so the pool's other
# connections are as dead; asyncpg only learns so when it reads each one's closed socket.
SESSION_ENDED: tuple[type[Exception], ...] = (
    asyncpg.AdminShutdownError,  # 57P01, what a terminated session is told
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.ConnectionDoesNotExistError,  # closed in the middle of the statement
    # The FATAL reached an idle connection before the end of its socket did: asyncpg leaves
    # it open, in a state that fails every statement with "cannot switch to state 11/12;
    # another operation (2) is in progress" (MagicStack/asyncpg#1069).
    asyncpg.InternalClientError,
)


async def replace_ended_sessions(pool: asyncpg.Pool, error: BaseException) -> None:
    """After a statement failed with `error`: if PostgreSQL ended its session, have the pool
    replace every connection it holds (as SQLAlchemy invalidates its pool on a disconnect).

    Otherwise the failed connection goes back into the pool still looking open (a release
    without a reset query sends nothing that would fail on it), and it and its ended siblings
    fail the next requests too. An expired connection is closed at its next acquire or
    release and a new one is connected; a live one costs a reconnect, once per restart.
    """
    if isinstance(error, SESSION_ENDED):
        await pool.expire_connections()


async def create_pool(
    dsn: str,
    min_size: int = 2,
    max_size: int = 10,
    *,
    reset_session: bool = True,
    server_settings: dict[str, str] | None = None,
) -> asyncpg.Pool:
    """`reset_session=False` skips asyncpg's reset query (advisory unlock all, CLOSE ALL,
    UNLISTEN, RESET ALL) on every release: one round trip per `pool.fetch*` that py-spy put
    at 6-25 % of each service's main thread. Only for processes that leave no session state
    behind (no SET, LISTEN, cursors; an advisory lock is released explicitly or the
    connection terminated). `server_settings`: session settings of every connection."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=None if reset_session else _keep_session,
        max_cached_statement_lifetime=STATEMENT_LIFETIME_S,
        server_settings=server_settings,
    )
