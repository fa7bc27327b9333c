"""Pipelines under test, each on its own broker prefix so none consumes another's work.

- `pipeline`: dispatcher + two sender replicas, dev mode, retry tiers scaled by 0.01
  (1m → 0.6 s, 5m → 3 s): the delivery stories. As in production, the dispatcher POSTs
  first attempts itself and the senders take the retries.
- `sender_queue_pipeline`: the same, but every first attempt goes through the sender queue
  (`HOOKPOST_DISPATCHER_FIRST_ATTEMPTS=0`): the senders' own stories.
- `isolated_pipeline`: a dispatcher alone (backpressure limit 3, first attempts through the
  sender queue); each test starts and stops its own senders (SIGKILL, SIGTERM, prod-mode
  SSRF) so it owns the queue.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from faststream.rabbit import RabbitBroker

from harness.broker import delete_broker_objects
from libs.infra.broker.topology import Topology, declare_topology
from libs.infra.settings import get_settings
from libs.worker.runtime import build_broker
from tests.support.stacks import Pipeline

BACKPRESSURE_LIMIT = 3
NO_FIRST_ATTEMPTS_HERE = {"HOOKPOST_DISPATCHER_FIRST_ATTEMPTS": "0"}


async def _with_two_senders(
    base_env: dict[str, str], suffix: str, **dispatcher_env: str
) -> AsyncIterator[Pipeline]:
    async with Pipeline(base_env, suffix) as pipe:
        await pipe.stack.add_dispatcher(**dispatcher_env)
        for _ in range(2):
            await pipe.stack.add_sender()
        yield pipe


async def one_of_each(base_env: dict[str, str], suffix: str, **env: str) -> AsyncIterator[Pipeline]:
    """A dispatcher and a sender on their own prefix, `env` for both."""
    async with Pipeline(base_env, suffix, **env) as pipe:
        await pipe.stack.start(api=False, dispatchers=1, senders=1)
        yield pipe


@pytest.fixture(scope="session")
async def pipeline(test_env: dict[str, str], db_pool: asyncpg.Pool) -> AsyncIterator[Pipeline]:
    # db_pool: the database exists and is migrated before any service starts.
    async for pipe in _with_two_senders(test_env, "pipe"):
        yield pipe


@pytest.fixture(scope="session")
async def sender_queue_pipeline(
    test_env: dict[str, str], db_pool: asyncpg.Pool
) -> AsyncIterator[Pipeline]:
    async for pipe in _with_two_senders(test_env, "queue", **NO_FIRST_ATTEMPTS_HERE):
        yield pipe


@pytest.fixture(scope="session")
async def isolated_pipeline(
    test_env: dict[str, str], db_pool: asyncpg.Pool
) -> AsyncIterator[Pipeline]:
    async with Pipeline(test_env, "iso") as pipe:
        await pipe.stack.add_dispatcher(
            HOOKPOST_BACKPRESSURE_PENDING_LIMIT=str(BACKPRESSURE_LIMIT),
            **NO_FIRST_ATTEMPTS_HERE,
        )
        yield pipe


@pytest.fixture
async def forget_orgs(db_pool: asyncpg.Pool) -> AsyncIterator[Callable[[str], None]]:
    """Delete the orgs a test names when it ends (cascades to its endpoints and deliveries),
    so retries it leaves behind find nothing to send."""
    names: list[str] = []
    yield names.append
    if names:
        await db_pool.execute("DELETE FROM organizations WHERE id = ANY($1::text[])", names)


@pytest.fixture
async def broker(test_env: dict[str, str]) -> AsyncIterator[tuple[RabbitBroker, Topology]]:
    """A connected broker client (a worker's) on a topology of the test's own, deleted after."""
    settings = get_settings()
    prefix = f"{test_env['HOOKPOST_BROKER_PREFIX']}_inproc_{uuid.uuid4().hex[:6]}"
    topology = Topology(prefix, settings.retry_delay_scale)
    broker = build_broker(settings, settings.dispatcher_prefetch)
    await broker.connect()
    await declare_topology(broker, topology)
    yield broker, topology
    await delete_broker_objects(test_env["HOOKPOST_AMQP_URL"], prefix, [topology.retry_delay_scale])
    await broker.stop()
