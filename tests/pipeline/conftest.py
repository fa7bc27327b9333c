"""Pipelines under test, each on its own broker prefix so none consumes another's work.

- `pipeline`: dispatcher + two sender replicas, dev mode, retry tiers scaled by 0.01
  (1m → 0.6 s, 5m → 3 s): the delivery stories.
- `isolated_pipeline`: a dispatcher alone (backpressure limit 3); each test starts and
  stops its own senders (SIGKILL, SIGTERM, prod-mode SSRF) so it owns the queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from tests.pipeline.harness import Pipeline

BACKPRESSURE_LIMIT = 3


async def _pipeline(base_env: dict[str, str], suffix: str, **overrides: str) -> Pipeline:
    return Pipeline(base_env, f"{base_env['HOOKPOST_BROKER_PREFIX']}_{suffix}", **overrides)


@pytest.fixture(scope="session")
async def pipeline(test_env: dict[str, str], db_pool: asyncpg.Pool) -> AsyncIterator[Pipeline]:
    # db_pool: the database exists and is migrated before any service starts.
    pipe = await _pipeline(test_env, "pipe")
    try:
        await pipe.start("dispatcher")
        pipe.senders = [await pipe.start("sender"), await pipe.start("sender")]
        yield pipe
    finally:
        await pipe.stop_all()
        await pipe.delete_broker_objects()


@pytest.fixture(scope="session")
async def isolated_pipeline(
    test_env: dict[str, str], db_pool: asyncpg.Pool
) -> AsyncIterator[Pipeline]:
    pipe = await _pipeline(test_env, "iso")
    try:
        await pipe.start("dispatcher", HOOKPOST_BACKPRESSURE_PENDING_LIMIT=str(BACKPRESSURE_LIMIT))
        yield pipe
    finally:
        await pipe.stop_all()
        await pipe.delete_broker_objects()


@pytest.fixture
async def forget_orgs(db_pool: asyncpg.Pool) -> AsyncIterator[Callable[[str], None]]:
    """Delete the orgs a test names when it ends (cascades to its endpoints and deliveries),
    so retries it leaves behind find nothing to send."""
    names: list[str] = []
    yield names.append
    if names:
        await db_pool.execute("DELETE FROM organizations WHERE id = ANY($1::text[])", names)
