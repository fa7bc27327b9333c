"""/healthz and /readyz of every service: ready only while the database answers.

Each service reaches PostgreSQL through its own TCP proxy, which the test cuts: the shared
server keeps running for everyone else.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import asyncpg
import httpx
import pytest

from harness.broker import delete_broker_objects
from harness.process import HOOKPOST_BIN, Process
from harness.services import service_env
from harness.waiting import eventually
from tests.support.stacks import Pipeline
from tests.support.tcp_proxy import TcpProxy, through

pytestmark = pytest.mark.e2e


async def _status(proc: Process, path: str) -> int:
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(proc.url(path))).status_code


@pytest.mark.parametrize("service", ["api", "dispatcher", "sender"])
async def test_readyz_follows_the_database_and_healthz_never_does(
    service: str, test_env: dict[str, str], db_pool: asyncpg.Pool, db_proxy: TcpProxy
) -> None:
    dsn = through(test_env["HOOKPOST_DATABASE_URL"], db_proxy)
    async with Pipeline(test_env, f"health_{service}", HOOKPOST_DATABASE_URL=dsn) as pipe:
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
    dsn = through(test_env["HOOKPOST_DATABASE_URL"], db_proxy)
    async with Pipeline(test_env, "health_wait", HOOKPOST_DATABASE_URL=dsn) as pipe:
        proc = await pipe.stack.spawn("sender", "sender", ready_path="/healthz")
        assert await _status(proc, "/readyz") == 503
        await db_proxy.restore()
        await eventually(lambda: _status(proc, "/readyz"), lambda s: s == 200, timeout=30)


async def test_any_number_of_workers_share_a_host_with_default_settings(
    test_env: dict[str, str], db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """A dispatcher and three senders, no HOOKPOST_OPS_PORT: the first takes 9100 (when it is
    free), the others a port of their own, each logged, each serving /readyz."""
    prefix = f"{test_env['HOOKPOST_BROKER_PREFIX']}_one_host"
    env = {k: v for k, v in service_env(test_env).items() if k != "HOOKPOST_OPS_PORT"}
    env["HOOKPOST_BROKER_PREFIX"] = prefix
    # port 0: unknown until each worker logs the one it took
    procs = [
        Process(name, [str(HOOKPOST_BIN), role], env=env, port=0, log_path=tmp_path / f"{name}.log")
        for name, role in (("dispatcher", "dispatcher"), *((f"s{n}", "sender") for n in (1, 2, 3)))
    ]
    for proc in procs:
        await asyncio.to_thread(proc.start, None)
    try:
        ports = [await eventually(lambda p=p: _logged_ops_port(p), bool) for p in procs]
        assert len(set(ports)) == 4, ports
        for port, proc in zip(ports, procs, strict=True):
            assert proc.running, "a worker exited"
            await eventually(lambda port=port: _get(port, "/readyz"), lambda s: s == 200)
    finally:
        for proc in procs:
            proc.signal(signal.SIGTERM)
        codes = [await asyncio.to_thread(proc.wait, 60) for proc in procs]
        scale = float(test_env["HOOKPOST_RETRY_DELAY_SCALE"])
        await delete_broker_objects(test_env["HOOKPOST_AMQP_URL"], prefix, [scale])
    assert codes == [0, 0, 0, 0]


async def _logged_ops_port(proc: Process) -> int | None:
    text = await asyncio.to_thread(proc.log_tail, 1000)
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
