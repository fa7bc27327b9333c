"""Send time, through the real pipeline in prod mode: DNS rebinding, redirects, endless bodies.

One pipeline on its own broker prefix: a dispatcher that hands every first attempt to the sender
queue, and a prod-mode sender (HOOKPOST_ENV=prod,
HOOKPOST_ALLOWED_PRIVATE_CIDRS=["127.0.0.1/32"] so the test's TLS receiver on 127.0.0.1 is a
legitimate target, send timeout 3 s) whose names resolve from a scripted zone
(tests/security/scripted_sender.py). Endpoints are registered and events sent through the
in-process api, itself in prod mode on the same prefix. 127.0.0.2 and 127.0.0.3 stand for
private addresses nobody allowed. The dispatcher's own first attempts make the same checks
(the last test).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
from aiohttp import web

from libs.domain.plans import Plan
from libs.infra import url_safety
from services.api.organizations.service import create_organization
from tests.api.conftest import Client, running_api
from tests.pipeline.conftest import NO_FIRST_ATTEMPTS_HERE
from tests.pipeline.harness import ConnectionCounter, Pipeline, TlsReceiver, eventually
from tests.security.conftest import settings_from_env
from tests.security.scripted_sender import ZONE_VARIABLE
from tests.support.factories import attempts_of, deliveries_of, event_message, make_endpoint
from tests.support.receiver import Receiver
from tests.support.services import ServiceProcess, free_port, service_env

SEND_TIMEOUT_S = 3.0
REBIND_NAME = "rebind.hookpost.test"
REDIRECTS = [301, 302, 303, 307, 308]
ALLOWED = '["127.0.0.1/32"]'
REPO = Path(__file__).resolve().parents[2]


class HostileReceiver(TlsReceiver):
    """The TLS receiver, plus paths that redirect elsewhere or stream an endless body."""

    def __init__(self, cert_dir: Path) -> None:
        super().__init__(cert_dir)
        self.redirect_to = ""
        self.streamed: dict[str, list[int]] = {}  # path -> bytes written, per request

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/redirect/"):
            await super()._handle(request)  # recorded like any request
            status = int(request.path.rsplit("/", 1)[1])
            return web.Response(status=status, headers={"Location": self.redirect_to})
        if request.path.startswith("/flood") or request.path.startswith("/trickle"):
            await super()._handle(request)
            return await self._stream(request)
        return await super()._handle(request)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        flood = request.path.startswith("/flood")
        response = web.StreamResponse(status=500 if flood else 200)
        response.content_type = "text/plain"
        written = self.streamed.setdefault(request.path, [])
        written.append(0)
        chunk = b"x" * 65536 if flood else b"."
        # Endless as far as the sender can tell, bounded for the test: 30 s or 256 MiB.
        deadline = time.monotonic() + 30
        try:
            await response.prepare(request)
            while time.monotonic() < deadline and written[-1] < 256 * 2**20:
                # aiohttp drops writes to a closed transport silently: stop counting there.
                if request.transport is None or request.transport.is_closing():
                    break
                await response.write(chunk)
                written[-1] += len(chunk)
                # yield even when write() does not (it returns at once once the peer is gone),
                # so one hung-up stream cannot starve the other connections of this loop
                await asyncio.sleep(0 if flood else 0.2)
        except (ConnectionError, RuntimeError):
            pass  # the sender hung up: what we want
        return response


@dataclass
class ProdPipeline:
    pipe: Pipeline
    sender: ServiceProcess
    receiver: HostileReceiver
    api: Client


@pytest.fixture(scope="module")
async def prod(
    test_env: dict[str, str], db_pool: asyncpg.Pool, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ProdPipeline]:
    work = tmp_path_factory.mktemp("send-time")
    receiver = await HostileReceiver(work).start()
    zone = work / "zone.json"
    zone.write_text(json.dumps({REBIND_NAME: ["127.0.0.3"]}))
    pipe = Pipeline(test_env, f"{test_env['HOOKPOST_BROKER_PREFIX']}_sec")
    org = await create_organization(db_pool, "send-time", Plan.PRO)
    sender: ServiceProcess | None = None
    try:
        await pipe.start("dispatcher", **NO_FIRST_ATTEMPTS_HERE)
        port = free_port()
        env = service_env(
            pipe.env,
            HOOKPOST_ENV="prod",
            HOOKPOST_ALLOWED_PRIVATE_CIDRS=ALLOWED,
            HOOKPOST_SEND_TIMEOUT_S=str(SEND_TIMEOUT_S),
            HOOKPOST_OPS_PORT=str(port),
            SSL_CERT_FILE=str(receiver.ca_path),  # trust the test receiver's certificate
            PYTHONPATH=str(REPO),
            **{ZONE_VARIABLE: str(zone)},
        )
        sender = ServiceProcess(
            "sender-scripted-dns",
            [],
            env,
            port,
            command=[sys.executable, "-m", "tests.security.scripted_sender"],
        )
        pipe.processes.append(sender)
        await asyncio.to_thread(sender.start)
        settings = settings_from_env(
            HOOKPOST_ENV="prod",
            HOOKPOST_BROKER_PREFIX=pipe.prefix,
            HOOKPOST_ALLOWED_PRIVATE_CIDRS=ALLOWED,
        )
        async with running_api(settings) as http:
            yield ProdPipeline(
                pipe, sender, receiver, Client(http, org.organizationId, org.apiToken)
            )
    finally:
        await db_pool.execute("DELETE FROM organizations WHERE id = $1", org.organizationId)
        await pipe.stop_all()
        await pipe.delete_broker_objects()
        await receiver.stop()


async def register(client: Client, url: str, event: str = "mapping.completed") -> str:
    response = await client.post(
        "/api/v1/delivery-destinations",
        json={"type": "WEBHOOK", "webhookUrl": url, "events": [event]},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def send_event(client: Client, event: str = "mapping.completed") -> str:
    response = await client.post("/api/v1/events", json={"type": event, "data": {"jobId": "j"}})
    assert response.status_code == 202, response.text
    return response.json()["eventId"]


async def first_attempts(db_pool: asyncpg.Pool, event_id: str, count: int) -> dict[str, Any]:
    """endpoint id -> the first attempt row of its delivery of this event."""
    rows = await eventually(
        lambda: deliveries_of(db_pool, event_id),
        lambda rows: len(rows) == count and all(r["attempt_count"] >= 1 for r in rows),
        timeout=60,
    )
    return {r["endpoint_id"]: (await attempts_of(db_pool, r["id"]))[0] for r in rows}


async def deactivate_all(client: Client) -> None:
    """Switch this org's destinations off, so the next test's event reaches only its own."""
    for dest in (await client.get("/api/v1/delivery-destinations")).json()["destinations"]:
        await client.delete(f"/api/v1/delivery-destinations/{dest['id']}")


async def test_dns_rebinding_is_refused_at_send_time_without_a_connection(
    prod: ProdPipeline, db_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = await ConnectionCounter("127.0.0.3").start()
    real_resolve = url_safety.resolve

    async def public_at_registration(host: str, port: int) -> list[url_safety.IPAddress]:
        if host == REBIND_NAME:
            return [ipaddress.ip_address("93.184.216.34")]
        return await real_resolve(host, port)

    try:
        monkeypatch.setattr(url_safety, "resolve", public_at_registration)
        url = f"https://{REBIND_NAME}:{counter.port}/hook?token=t"
        endpoint_id = await register(prod.api, url)  # public then: accepted
        monkeypatch.setattr(url_safety, "resolve", real_resolve)
        event_id = await send_event(prod.api)
        attempts = await first_attempts(db_pool, event_id, 1)
        attempt = attempts[endpoint_id]
        assert attempt["succeeded"] is False
        assert attempt["http_status"] is None
        assert attempt["error"].startswith("refused: ")
        assert "non-public address (127.0.0.3)" in attempt["error"]
        assert "token=t" not in attempt["error"]
        await asyncio.sleep(0.5)  # a connection, had one been made, would have been counted
        assert counter.connections == 0
    finally:
        await deactivate_all(prod.api)
        await counter.stop()


async def test_redirects_to_a_private_address_are_never_followed(
    prod: ProdPipeline, db_pool: asyncpg.Pool
) -> None:
    landing = await Receiver(host="127.0.0.2").start()
    prod.receiver.redirect_to = landing.url("/landing")
    try:
        endpoints = {
            await register(prod.api, prod.receiver.url(f"/redirect/{status}")): status
            for status in REDIRECTS
        }
        event_id = await send_event(prod.api)
        attempts = await first_attempts(db_pool, event_id, len(REDIRECTS))
        for endpoint_id, status in endpoints.items():
            attempt = attempts[endpoint_id]
            assert attempt["succeeded"] is False, attempt
            assert attempt["http_status"] == status
            assert "redirects are not followed" in attempt["error"]
            assert prod.receiver.on(f"/redirect/{status}")  # the first hop was made
        await asyncio.sleep(0.5)
        assert landing.requests == []
    finally:
        await deactivate_all(prod.api)
        await landing.stop()


async def test_an_endless_response_body_cannot_exhaust_the_sender(
    prod: ProdPipeline, db_pool: asyncpg.Pool
) -> None:
    assert prod.sender.proc is not None
    process = psutil.Process(prod.sender.proc.pid)
    rss_before = process.memory_info().rss
    floods = [await register(prod.api, prod.receiver.url(f"/flood/{n}")) for n in range(3)]
    trickle = await register(prod.api, prod.receiver.url("/trickle"))
    try:
        event_id = await send_event(prod.api)
        attempts = await first_attempts(db_pool, event_id, 4)
        for endpoint_id in floods:
            attempt = attempts[endpoint_id]
            assert attempt["http_status"] == 500 and attempt["succeeded"] is False, (
                attempt["error"],
                attempt["duration_ms"],
            )
            assert 0 < len(attempt["response_excerpt"].encode()) <= 4096
            assert attempt["duration_ms"] < SEND_TIMEOUT_S * 1000
        slow = attempts[trickle]
        assert slow["succeeded"] is False and "timeout" in slow["error"], dict(slow)
        assert slow["duration_ms"] <= SEND_TIMEOUT_S * 1000 + 1500
        rss_after = process.memory_info().rss
        # A sender that read the floods whole would hold hundreds of MB by now.
        assert rss_after - rss_before < 40 * 1024 * 1024, (rss_before, rss_after)
        # The receiver got no further than socket buffers' worth before each hang-up.
        pushed = [n for path, ns in prod.receiver.streamed.items() if "flood" in path for n in ns]
        assert pushed and max(pushed) < 64 * 2**20, prod.receiver.streamed
        print(
            f"endless bodies: sender RSS {rss_before / 2**20:.1f} → {rss_after / 2**20:.1f} MiB;"
            f" bytes the floods pushed before the hang-up: {prod.receiver.streamed}"
        )
    finally:
        await deactivate_all(prod.api)


async def test_a_prod_dispatchers_own_first_attempt_refuses_a_private_address(
    test_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    """No sender at all: the first attempt is the dispatcher's (first_attempts.py), and it
    runs the sender's checks in the dispatcher's own mode."""
    counter = await ConnectionCounter("127.0.0.2").start()
    pipe = Pipeline(test_env, f"{test_env['HOOKPOST_BROKER_PREFIX']}_secfirst")
    org = await create_organization(db_pool, "first-attempt-ssrf", Plan.PRO)
    try:
        await pipe.start("dispatcher", HOOKPOST_ENV="prod", HOOKPOST_ALLOWED_PRIVATE_CIDRS=ALLOWED)
        # Stored as if it had passed registration (a rebinding name, say): only the send-time
        # check stands between the dispatcher and 127.0.0.2.
        await make_endpoint(
            db_pool,
            org.organizationId,
            f"https://127.0.0.2:{counter.port}/hook",
            ["mapping.completed"],
        )
        event = event_message(org.organizationId)
        await pipe.publish(event)
        [attempt] = (await first_attempts(db_pool, event.id, 1)).values()
        assert attempt["succeeded"] is False and attempt["http_status"] is None
        assert attempt["error"].startswith("refused: ")
        assert "non-public address (127.0.0.2)" in attempt["error"]
        await asyncio.sleep(0.5)  # a connection, had one been made, would have been counted
        assert counter.connections == 0
    finally:
        await db_pool.execute("DELETE FROM organizations WHERE id = $1", org.organizationId)
        await pipe.stop_all()
        await pipe.delete_broker_objects()
        await counter.stop()
