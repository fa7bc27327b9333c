"""/healthz and /readyz of every service: ready only while the database answers.

Each service reaches PostgreSQL through its own TCP proxy, which the test cuts: the shared
server keeps running for everyone else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from harness.process import Process
from harness.waiting import eventually
from tests.support.stacks import Pipeline
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e


@pytest.fixture
async def db_proxy(test_env: dict[str, str]) -> AsyncIterator[TcpProxy]:
    dsn = urlsplit(test_env["HOOKPOST_DATABASE_URL"])
    proxy = await TcpProxy(dsn.hostname or "127.0.0.1", dsn.port or 5432).start()
    yield proxy
    await proxy.cut()


def _through(dsn: str, port: int) -> str:
    """The DSN with 127.0.0.1:<port> (the proxy) as its host."""
    parts = urlsplit(dsn)
    credentials, at, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{credentials}{at}127.0.0.1:{port}"))


async def _status(proc: Process, path: str) -> int:
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(proc.url(path))).status_code


@pytest.mark.parametrize("service", ["api", "dispatcher", "sender"])
async def test_readyz_follows_the_database_and_healthz_never_does(
    service: str, test_env: dict[str, str], db_pool: asyncpg.Pool, db_proxy: TcpProxy
) -> None:
    through = _through(test_env["HOOKPOST_DATABASE_URL"], db_proxy.port)
    async with Pipeline(test_env, f"health_{service}", HOOKPOST_DATABASE_URL=through) as pipe:
        proc = await pipe.stack.spawn(service, service)  # waits for /readyz 200

        await db_proxy.cut()
        await eventually(lambda: _status(proc, "/readyz"), lambda s: s == 503, timeout=20)
        assert await _status(proc, "/healthz") == 200

        await db_proxy.restore()
        await eventually(lambda: _status(proc, "/readyz"), lambda s: s == 200, timeout=30)
        assert await _status(proc, "/healthz") == 200


async def test_a_worker_waiting_for_its_database_is_alive_but_not_ready(
    test_env: dict[str, str], db_pool: asyncpg.Pool, db_proxy: TcpProxy
) -> None:
    """Kubernetes must not restart it (liveness) nor send it traffic (readiness) yet."""
    await db_proxy.cut()
    through = _through(test_env["HOOKPOST_DATABASE_URL"], db_proxy.port)
    async with Pipeline(test_env, "health_wait", HOOKPOST_DATABASE_URL=through) as pipe:
        proc = await pipe.stack.spawn("sender", "sender", ready_path="/healthz")
        assert await _status(proc, "/readyz") == 503
        await db_proxy.restore()
        await eventually(lambda: _status(proc, "/readyz"), lambda s: s == 200, timeout=30)
