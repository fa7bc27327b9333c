"""PostgreSQL going away under the api: 503 with a clear error and Retry-After, never a 500,
and the api serves again by itself when the database is back (found by `make chaos`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from libs.infra.settings import Settings
from tests.api.conftest import assert_error, running_api, wait_until
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


class SlowHangUp:
    """A TCP forwarder to PostgreSQL that passes on at once all it says, but closes the api's
    side only LINGER_S after PostgreSQL closed its own.

    A terminated session's FATAL 57P01 then reaches asyncpg well before the end of its
    socket: the window in which asyncpg#1069 shows (the FATAL arrives on an idle pooled
    connection, which is not closed yet and fails its next statement with "cannot switch to
    state 11/12; another operation (2) is in progress"). Unproxied, the window lasts a few
    milliseconds and a round caught it now and then; here every round is in it.
    """

    LINGER_S = 1.0

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self.port = 0

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._forward_both_ways, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _forward_both_ways(
        self, api_reader: asyncio.StreamReader, api_writer: asyncio.StreamWriter
    ) -> None:
        db_reader, db_writer = await asyncio.open_connection(*self._upstream)
        await asyncio.gather(
            self._forward(api_reader, db_writer, linger_s=0),
            self._forward(db_reader, api_writer, linger_s=self.LINGER_S),
        )

    @staticmethod
    async def _forward(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, linger_s: float
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                sink.write(data)
        await asyncio.sleep(linger_s)
        sink.transport.abort()


async def test_sessions_terminated_by_postgres_are_a_503_at_worst_never_a_500(
    settings: Settings, make_org: Callable, db_pool: asyncpg.Pool
) -> None:
    """What a PostgreSQL restart does to idle pooled sessions: FATAL 57P01 on each of them.

    A statement on such a session fails (InternalClientError, asyncpg#1069, or a connection
    closed mid-statement): that is the database going away, a 503, never a 500. And the api
    recovers at once: neither that session nor its ended siblings serve the next requests.
    """
    org = await make_org()
    headers = {"Authorization": f"Bearer {org.apiToken}"}
    body = {"type": "mapping.completed", "data": {"mappingJobId": "job_terminated"}}
    name = f"api-terminated-{org.organizationId[-8:]}"
    url = urlsplit(settings.database_url)
    proxy = SlowHangUp(url.hostname or "127.0.0.1", url.port or 5432)
    server = await proxy.start()
    netloc = f"{url.netloc.rpartition('@')[0]}@127.0.0.1:{proxy.port}"
    separator = "&" if url.query else ""
    query = f"{url.query}{separator}application_name={name}"
    # Only the requests below use the pool: no outbox relay round (it starts with one) and,
    # before each termination, no publish mark still to write.
    api_settings = settings.model_copy(
        update={
            "database_url": urlunsplit(url._replace(netloc=netloc, query=query)),
            "outbox_relay_interval_s": 3600.0,
        }
    )
    refused: list[int] = []
    async with server, running_api(api_settings) as http:
        for _ in range(3):
            statuses = await asyncio.gather(
                *(http.post(EVENTS, headers=headers, json=body) for _ in range(8))
            )
            assert {r.status_code for r in statuses} == {202}
            await wait_until(lambda: all_marked(db_pool, org.organizationId))
            await terminate_sessions(db_pool, name)
            answers = await asyncio.gather(
                *(http.post(EVENTS, headers=headers, json=body) for _ in range(8))
            )
            for response in answers:
                if response.status_code != 202:
                    assert_error(response, 503, "SERVICE_UNAVAILABLE")
                    refused.append(response.status_code)
    assert refused, "no request met an ended session: the test did not test anything"


async def all_marked(db_pool: asyncpg.Pool, org_id: str) -> bool:
    return not await db_pool.fetchval(
        "SELECT count(*) FROM events WHERE organization_id = $1 AND published_at IS NULL",
        org_id,
    )


async def terminate_sessions(db_pool: asyncpg.Pool, application_name: str) -> None:
    """End every session of the api, as a restart does, and wait until their backends are
    gone (pg_terminate_backend only signals them)."""
    pids = await db_pool.fetchval(
        "SELECT array_agg(pid) FROM pg_stat_activity WHERE application_name = $1",
        application_name,
    )
    assert pids
    await db_pool.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
    for _ in range(500):
        if not await db_pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids
        ):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("terminated backends still there after 5 s")
    await asyncio.sleep(0.05)  # their FATALs reach the api's idle connections
