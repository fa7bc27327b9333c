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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from harness.process import Process, free_port
from harness.receiver import Endless, Receiver, Redirect
from libs.domain.plans import Plan
from libs.infra import url_safety
from services.api.organizations.service import create_organization
from tests.api.conftest import Client, running_api
from tests.pipeline.conftest import NO_FIRST_ATTEMPTS_HERE
from tests.security.conftest import settings_from_env
from tests.security.scripted_sender import ZONE_VARIABLE
from tests.support.connection_counter import ConnectionCounter
from tests.support.factories import attempts_of, deliveries_when, event_message, make_endpoint
from tests.support.stacks import Pipeline

SEND_TIMEOUT_S = 3.0
REBIND_NAME = "rebind.hookpost.test"
REDIRECTS = [301, 302, 303, 307, 308]
ALLOWED = '["127.0.0.1/32"]'
REPO = Path(__file__).resolve().parents[2]


@dataclass
class ProdPipeline:
    pipe: Pipeline
    sender: Process
    receiver: Receiver  # over TLS
    api: Client


@pytest.fixture(scope="module")
async def prod(
    test_env: dict[str, str], db_pool: asyncpg.Pool, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ProdPipeline]:
    work = tmp_path_factory.mktemp("send-time")
    receiver = await Receiver(tls_dir=work).start()
    zone = work / "zone.json"
    zone.write_text(json.dumps({REBIND_NAME: ["127.0.0.3"]}))
    org = await create_organization(db_pool, "send-time", Plan.PRO)
    try:
        async with Pipeline(test_env, "sec") as pipe:
            await pipe.stack.add_dispatcher(**NO_FIRST_ATTEMPTS_HERE)
            port = free_port()
            env = {
                **pipe.env,
                "HOOKPOST_ENV": "prod",
                "HOOKPOST_ALLOWED_PRIVATE_CIDRS": ALLOWED,
                "HOOKPOST_SEND_TIMEOUT_S": str(SEND_TIMEOUT_S),
                "HOOKPOST_OPS_PORT": str(port),
                "SSL_CERT_FILE": str(receiver.ca_path),  # trust the test receiver's certificate
                "PYTHONPATH": str(REPO),
                ZONE_VARIABLE: str(zone),
            }
            name = "sender-scripted-dns"
            argv = [sys.executable, "-m", "tests.security.scripted_sender"]
            log_path = pipe.stack.log_path(name, port)
            sender = await pipe.stack.adopt(
                Process(name, argv, env=env, port=port, log_path=log_path, stop_timeout_s=20.0)
            )
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
    rows = await deliveries_when(
        db_pool,
        event_id,
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
    try:
        endpoints = {
            await register(
                prod.api,
                prod.receiver.behave(
                    f"/redirect/{status}", Redirect(status, landing.url("/landing"))
                ),
            ): status
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
    rss_before = prod.sender.rss_mb()
    floods = [
        await register(prod.api, prod.receiver.behave(f"/flood/{n}", Endless.flood()))
        for n in range(3)
    ]
    trickle = await register(prod.api, prod.receiver.behave("/trickle", Endless.trickle()))
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
        rss_after = prod.sender.rss_mb()
        # A sender that read the floods whole would hold hundreds of MB by now.
        assert rss_after - rss_before < 40, (rss_before, rss_after)
        # The receiver got no further than socket buffers' worth before each hang-up.
        pushed = prod.receiver.streamed("/flood")
        assert pushed and max(pushed) < 64 * 2**20, pushed
        print(
            f"endless bodies: sender RSS {rss_before:.1f} → {rss_after:.1f} MiB;"
            f" bytes the floods pushed before the hang-up: {pushed}"
        )
    finally:
        await deactivate_all(prod.api)


async def test_a_prod_dispatchers_own_first_attempt_refuses_a_private_address(
    test_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    """No sender at all: the first attempt is the dispatcher's (first_attempts.py), and it
    runs the sender's checks in the dispatcher's own mode."""
    counter = await ConnectionCounter("127.0.0.2").start()
    org = await create_organization(db_pool, "first-attempt-ssrf", Plan.PRO)
    try:
        async with Pipeline(test_env, "secfirst") as pipe:
            await pipe.stack.add_dispatcher(
                HOOKPOST_ENV="prod", HOOKPOST_ALLOWED_PRIVATE_CIDRS=ALLOWED
            )
            # Stored as if it had passed registration (a rebinding name, say): only the
            # send-time check stands between the dispatcher and 127.0.0.2.
            url = f"https://127.0.0.2:{counter.port}/hook"
            await make_endpoint(db_pool, org.organizationId, url)
            event = event_message(org.organizationId)
            await pipe.publish(event)
            [attempt] = (await first_attempts(db_pool, event.id, 1)).values()
            assert attempt["succeeded"] is False and attempt["http_status"] is None
            assert attempt["error"].startswith("refused: ")
            assert "non-public address (127.0.0.2)" in attempt["error"]
            await asyncio.sleep(0.5)  # a connection, had one been made, would be counted
            assert counter.connections == 0
    finally:
        await db_pool.execute("DELETE FROM organizations WHERE id = $1", org.organizationId)
        await counter.stop()
