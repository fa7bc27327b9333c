"""/healthz and /readyz of every service: ready only while the database answers.

Each service reaches PostgreSQL through its own TCP proxy, which the test cuts: the shared
server keeps running for everyone else.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from tests.pipeline.harness import Pipeline, eventually
from tests.support.services import HOOKPOST_BIN, ServiceProcess, free_port, service_env
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


async def _status(proc: ServiceProcess, path: str) -> int:
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(f"http://127.0.0.1:{proc.ops_port}{path}")).status_code


@pytest.mark.parametrize("service", ["api", "dispatcher", "sender"])
async def test_readyz_follows_the_database_and_healthz_never_does(
    service: str, test_env: dict[str, str], db_pool: asyncpg.Pool, db_proxy: TcpProxy
) -> None:
    pipe = Pipeline(
        test_env,
        f"{test_env['HOOKPOST_BROKER_PREFIX']}_health_{service}",
        HOOKPOST_DATABASE_URL=_through(test_env["HOOKPOST_DATABASE_URL"], db_proxy.port),
    )
    try:
        if service == "api":
            port = free_port()
            proc = ServiceProcess("api", ["api", "--port", str(port)], service_env(pipe.env), port)
            pipe.processes.append(proc)
            await asyncio.to_thread(proc.start)  # waits for /readyz 200
        else:
            proc = await pipe.start(service)  # waits for /readyz 200

        await db_proxy.cut()
        await eventually(lambda: _status(proc, "/readyz"), lambda s: s == 503, timeout=20)
        assert await _status(proc, "/healthz") == 200

        await db_proxy.restore()
        await eventually(lambda: _status(proc, "/readyz"), lambda s: s == 200, timeout=30)
        assert await _status(proc, "/healthz") == 200
    finally:
        await pipe.stop_all()
        await pipe.delete_broker_objects()


async def test_a_worker_waiting_for_its_database_is_alive_but_not_ready(
    test_env: dict[str, str], db_pool: asyncpg.Pool, db_proxy: TcpProxy
) -> None:
    """Kubernetes must not restart it (liveness) nor send it traffic (readiness) yet."""
    await db_proxy.cut()
    pipe = Pipeline(
        test_env,
        f"{test_env['HOOKPOST_BROKER_PREFIX']}_health_wait",
        HOOKPOST_DATABASE_URL=_through(test_env["HOOKPOST_DATABASE_URL"], db_proxy.port),
    )
    try:
        port = free_port()
        proc = ServiceProcess(
            "sender", ["sender"], service_env(pipe.env, HOOKPOST_OPS_PORT=str(port)), port
        )
        pipe.processes.append(proc)
        await asyncio.to_thread(proc.start, 30.0, "/healthz")
        assert await _status(proc, "/readyz") == 503
        await db_proxy.restore()
        await eventually(lambda: _status(proc, "/readyz"), lambda s: s == 200, timeout=30)
    finally:
        await pipe.stop_all()
        await pipe.delete_broker_objects()


async def test_any_number_of_workers_share_a_host_with_default_settings(
    test_env: dict[str, str], db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """A dispatcher and three senders, no HOOKPOST_OPS_PORT: the first takes 9100 (when it is
    free), the others a port of their own, each logged, each serving /readyz."""
    prefix = f"{test_env['HOOKPOST_BROKER_PREFIX']}_one_host"
    env = {k: v for k, v in service_env(test_env).items() if k != "HOOKPOST_OPS_PORT"}
    env["HOOKPOST_BROKER_PREFIX"] = prefix
    logs = [tmp_path / f"{name}.log" for name in ("dispatcher", "s1", "s2", "s3")]
    procs = [
        await asyncio.create_subprocess_exec(
            str(HOOKPOST_BIN),
            "dispatcher" if n == 0 else "sender",
            env=env,
            stdout=await asyncio.to_thread(log.open, "wb"),
            stderr=subprocess.STDOUT,
        )
        for n, log in enumerate(logs)
    ]
    try:
        ports = [await eventually(lambda log=log: _logged_ops_port(log), bool) for log in logs]
        assert len(set(ports)) == 4, ports
        for port, proc in zip(ports, procs, strict=True):
            assert proc.returncode is None, "a worker exited"
            await eventually(lambda port=port: _get(port, "/readyz"), lambda s: s == 200)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(proc.wait(), 60) for proc in procs]
        await Pipeline(test_env, prefix).delete_broker_objects()
    assert codes == [0, 0, 0, 0]


async def _logged_ops_port(log: Path) -> int | None:
    text = await asyncio.to_thread(log.read_text, errors="replace")
    for line in text.splitlines():
        if '"ops endpoints listening"' in line:
            return int(json.loads(line)["ops_port"])
    return None


async def _get(port: int, path: str) -> int:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(f"http://127.0.0.1:{port}{path}")).status_code
    except httpx.HTTPError:
        return 0
