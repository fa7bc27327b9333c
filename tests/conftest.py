"""Shared fixtures: each test run gets its own database and broker prefix on the real servers."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest

RUN_ID = uuid.uuid4().hex[:8]
TEST_ENV = {
    "HOOKPOST_ENV": "dev",
    "HOOKPOST_DATABASE_URL": os.environ.get(
        "HOOKPOST_TEST_DATABASE_URL",
        f"postgresql://postgres:postgres@127.0.0.1:5432/hookpost_test_{RUN_ID}",
    ),
    "HOOKPOST_AMQP_URL": os.environ.get("HOOKPOST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    "HOOKPOST_BROKER_PREFIX": f"hookpost_test_{RUN_ID}",
    "HOOKPOST_RETRY_DELAY_SCALE": "0.01",
    "HOOKPOST_ENCRYPTION_KEY": "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcyEhISE=",
    "HOOKPOST_ADMIN_TOKEN": "admin-test-token",
    "HOOKPOST_OUTBOX_RELAY_INTERVAL_S": "0.5",
    "HOOKPOST_OUTBOX_RELAY_GRACE_S": "1",
    # Services started by tests share one database: their reconcilers would re-drive each
    # other's leftovers. The tests of the reconciler set their own.
    "HOOKPOST_RECONCILE_INTERVAL_S": "3600",
    # Every engine the tests start shares one database, so each would take a sliver of an
    # endpoint's ceiling: the tests of the limits set their own.
    "HOOKPOST_ENDPOINT_MAX_CONCURRENCY": "100000",
}
# Settings are read from the environment: set it before any hookpost module reads them.
os.environ.update(TEST_ENV)

from harness import stale_runs  # noqa: E402
from harness.receiver import Receiver  # noqa: E402
from libs.domain.plans import Plan  # noqa: E402
from libs.infra.db.migrate import migrate  # noqa: E402
from libs.infra.db.pool import create_pool  # noqa: E402
from libs.infra.settings import get_settings  # noqa: E402
from services.api.organizations.service import (  # noqa: E402
    CreatedOrganization,
    create_organization,
)
from tests.support.tcp_proxy import TcpProxy, proxy_to  # noqa: E402


@pytest.fixture(scope="session")
def test_env() -> dict[str, str]:
    return dict(TEST_ENV)


@pytest.fixture(scope="session", autouse=True)
async def this_run() -> AsyncIterator[None]:
    """Say this run is in progress for its whole length, and first remove what killed runs
    left on the shared servers (harness/stale_runs.py): their queues use up the broker's
    file handles."""
    if "HOOKPOST_TEST_DATABASE_URL" in os.environ:
        yield  # a database of the caller's: not ours to sweep around
        return
    admin_dsn = TEST_ENV["HOOKPOST_DATABASE_URL"].rpartition("/")[0] + "/postgres"
    run = stale_runs.run_name("test", RUN_ID)
    presence = await stale_runs.presence(admin_dsn, run)
    try:
        swept = await stale_runs.sweep(TEST_ENV["HOOKPOST_AMQP_URL"], admin_dsn, run)
        if swept:
            print(f"\nswept what killed runs left: {', '.join(swept)}")
        yield
    finally:
        await presence.close()


@pytest.fixture(scope="session")
async def db_pool() -> AsyncIterator[asyncpg.Pool]:
    get_settings.cache_clear()
    dsn = get_settings().database_url
    await migrate(dsn)
    pool = await create_pool(dsn)
    yield pool
    await pool.close()
    if "HOOKPOST_TEST_DATABASE_URL" not in os.environ:
        await _on_server(dsn, 'DROP DATABASE IF EXISTS "{}" WITH (FORCE)')


@pytest.fixture
async def fresh_dsn() -> AsyncIterator[str]:
    """A database of its own, empty, dropped after the test: for what the session's shared
    database must not see (partitions created and dropped, an old schema) or must not
    disturb (a query plan that depends on the table statistics the test sets up). Named
    after this run, so that a killed run's is swept with the rest (harness/stale_runs.py)."""
    dsn = f"{get_settings().database_url}_fresh_{uuid.uuid4().hex[:8]}"
    await _on_server(dsn, 'CREATE DATABASE "{}"')
    try:
        yield dsn
    finally:
        await _on_server(dsn, 'DROP DATABASE IF EXISTS "{}" WITH (FORCE)')


async def _on_server(dsn: str, statement: str) -> None:
    """`statement`, with the database's name for {}, on its server's maintenance database
    (CREATE and DROP DATABASE run outside the database itself)."""
    server, _, name = dsn.rpartition("/")
    admin = await asyncpg.connect(f"{server}/postgres")
    try:
        await admin.execute(statement.format(name))
    finally:
        await admin.close()


@pytest.fixture
async def make_org(db_pool: asyncpg.Pool) -> Callable:
    async def make(plan: Plan = Plan.FREE, name: str | None = None) -> CreatedOrganization:
        return await create_organization(db_pool, name or f"org-{uuid.uuid4().hex[:6]}", plan)

    return make


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


@pytest.fixture
async def db_proxy() -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the test database, for a test to cut (the shared server keeps
    running for everyone else); connect through it with `tcp_proxy.through(dsn, db_proxy)`."""
    proxy = await proxy_to(TEST_ENV["HOOKPOST_DATABASE_URL"], 5432)
    yield proxy
    await proxy.cut()


@pytest.fixture(scope="session", autouse=True)
def _delete_broker_objects_after_run() -> Iterator[None]:
    yield
    from harness.broker import delete_broker_objects
    from tests.support.stacks import E2E_RETRY_SCALE

    # The run's own prefix, at each scale its stacks ran with (the tiers' names carry it):
    # the e2e stacks' 0.002 was left behind by every run, 19 queues each.
    scales = [float(TEST_ENV["HOOKPOST_RETRY_DELAY_SCALE"]), float(E2E_RETRY_SCALE)]
    asyncio.run(
        delete_broker_objects(
            TEST_ENV["HOOKPOST_AMQP_URL"], TEST_ENV["HOOKPOST_BROKER_PREFIX"], scales
        )
    )
