"""PostgreSQL going away under the api: 503 with a clear error and Retry-After, never a 500,
and the api serves again by itself when the database is back (found by `make chaos`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from libs.infra.settings import Settings
from tests.api.conftest import assert_error, running_api
from tests.support.tcp_proxy import TcpProxy, proxy_to

EVENTS = "/api/v1/events"


@pytest.fixture
async def db_proxy(settings: Settings) -> AsyncIterator[TcpProxy]:
    proxy = await proxy_to(settings.database_url, 5432)
    yield proxy
    await proxy.cut()


def through(settings: Settings, proxy: TcpProxy) -> Settings:
    url = urlsplit(settings.database_url)
    netloc = f"{url.netloc.rpartition('@')[0]}@127.0.0.1:{proxy.port}"
    return settings.model_copy(update={"database_url": urlunsplit(url._replace(netloc=netloc))})


async def count_events(pool: asyncpg.Pool, org_id: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM events WHERE organization_id = $1", org_id)


async def test_database_down_is_a_503_and_the_api_recovers_by_itself(
    settings: Settings, make_org: Callable, db_pool: asyncpg.Pool, db_proxy: TcpProxy
) -> None:
    org = await make_org()
    headers = {"Authorization": f"Bearer {org.apiToken}"}
    body = {"type": "mapping.completed", "data": {"mappingJobId": "job_outage"}}
    async with running_api(through(settings, db_proxy)) as http:
        assert (await http.post(EVENTS, headers=headers, json=body)).status_code == 202

        await db_proxy.cut()  # live connections reset, new ones refused
        for _ in range(3):  # a pooled connection that died, then fresh connects refused
            response = await http.post(EVENTS, headers=headers, json=body)
            error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
            assert "database" in error["message"]
            assert response.headers["Retry-After"].isdigit()
        assert await count_events(db_pool, org.organizationId) == 1  # nothing was stored

        await db_proxy.restore()
        deadline = asyncio.get_running_loop().time() + 15
        while (response := await http.post(EVENTS, headers=headers, json=body)).status_code != 202:
            assert response.status_code == 503, response.text
            assert asyncio.get_running_loop().time() < deadline, "the api did not recover"
            await asyncio.sleep(0.2)
        assert await count_events(db_pool, org.organizationId) == 2


async def test_sessions_terminated_by_postgres_are_a_503_at_worst_never_a_500(
    settings: Settings, make_org: Callable, db_pool: asyncpg.Pool
) -> None:
    """What a PostgreSQL restart does to idle pooled sessions: FATAL 57P01 on each of them.

    asyncpg can then fail the next statement on such a session with InternalClientError
    ("cannot switch to state 12; another operation is in progress", MagicStack/asyncpg#1069)
    instead of a connection error; that too is the database going away, not a server bug.
    """
    org = await make_org()
    headers = {"Authorization": f"Bearer {org.apiToken}"}
    body = {"type": "mapping.completed", "data": {"mappingJobId": "job_terminated"}}
    name = f"api-terminated-{org.organizationId[-8:]}"
    separator = "&" if "?" in settings.database_url else "?"
    tagged = settings.model_copy(
        update={"database_url": f"{settings.database_url}{separator}application_name={name}"}
    )
    async with running_api(tagged) as http:
        for _ in range(12):  # the asyncpg race shows in about one round in ten
            statuses = await asyncio.gather(
                *(http.post(EVENTS, headers=headers, json=body) for _ in range(8))
            )
            assert {r.status_code for r in statuses} == {202}
            terminated = await db_pool.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1",
                name,
            )
            assert terminated >= 1
            answers = await asyncio.gather(
                *(http.post(EVENTS, headers=headers, json=body) for _ in range(8))
            )
            for response in answers:
                if response.status_code != 202:
                    assert_error(response, 503, "SERVICE_UNAVAILABLE")
