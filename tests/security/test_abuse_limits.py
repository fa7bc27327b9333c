"""Abuse limits at the api: 401 before the body is read, 413 for big bodies, 429 on ingest.

In-process here (the app with its lifespan, on the real database and broker); the same
limits over a real socket, with a chunked body, are in test_limits_over_http.py.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from libs.domain.plans import Plan
from services.api.errors import install_error_handlers
from services.api.rate_limit import OrgRateLimiter, retry_after_seconds
from services.api.routing import ApiRoute, MiB, max_body
from tests.api.conftest import assert_error, running_api, subscription_body
from tests.security.conftest import ProdApi, settings_from_env

EVENTS = "/api/v1/events"
SUBS = "/api/v1/webhook-subscriptions"
EVENT = {"type": "mapping.completed", "data": {"mappingJobId": "job_1", "rowCount": 1}}


# ---------------------------------------------------------------- 401 before the body


@pytest.mark.parametrize(
    "authorization", [None, "Bearer hpk_not-a-real-token", "Basic dXNlcjpwdw==", "Bearer "]
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", SUBS),
        ("PUT", f"{SUBS}/sub_x"),
        ("POST", "/api/v1/delivery-destinations"),
        ("POST", EVENTS),
        ("PUT", "/api/v1/admin/organizations/org_x/plan"),
    ],
)
@pytest.mark.parametrize(
    "content",
    [b'{"webhookUrl": "https://localhost/x", "events": [', b"\xff\xfe", b"[" * 50_000],
    ids=["truncated-json", "not-utf8", "deep-nesting"],
)
async def test_unauthenticated_requests_are_401_whatever_the_body(
    http: httpx.AsyncClient, method: str, path: str, authorization: str | None, content: bytes
) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    response = await http.request(method, path, content=content, headers=headers)
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_every_secured_operation_answers_401_before_reading_a_malformed_body(
    http: httpx.AsyncClient,
) -> None:
    """Walks the api's own OpenAPI schema, so a route added later is covered too."""
    schema = (await http.get("/openapi.json")).json()
    checked = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if not operation.get("security"):
                continue
            url = re.sub(r"\{[^}]+\}", "x_1", path)
            response = await http.request(
                method.upper(),
                url,
                content=b'{"a": [',
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 401, (method, path, response.text)
            assert_error(response, 401, "UNAUTHORIZED")
            checked.append((method, path))
    assert len(checked) >= 20, checked


async def test_unauthenticated_oversized_body_is_401_not_413(http: httpx.AsyncClient) -> None:
    response = await http.post(EVENTS, content=b"x" * (2 * MiB))
    assert_error(response, 401, "UNAUTHORIZED")


async def test_authenticated_malformed_json_is_still_400(client: Any) -> None:
    response = await client.post(
        SUBS, content=b'{"events": [', headers={"Content-Type": "application/json"}
    )
    assert "JSON" in assert_error(response, 400, "BAD_REQUEST")["message"]


async def test_public_routes_need_no_token(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/openapi.json")).status_code == 200


# ---------------------------------------------------------------- 413


async def test_body_over_the_default_limit_is_413(client: Any, settings: Any) -> None:
    limit = settings.max_body_bytes
    assert limit == MiB  # the documented default
    big = {"type": "mapping.completed", "data": {"blob": "x" * limit}}
    response = await client.post(EVENTS, json=big)
    error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert error["maxBytes"] == limit
    # just under the limit, the same route reads the body (and judges it on its merits)
    small = {"type": "mapping.completed", "data": {"blob": "x" * 1000}}
    assert (await client.post(EVENTS, json=small)).status_code == 202


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(client: Any) -> None:
    """No Content-Length: the body is counted as it arrives and no longer read after the cap."""
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(10_000):  # 640 MiB if anyone read it all
            pulled += 1
            yield b"x" * 65536

    response = await client.post(EVENTS, content=endless())
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert pulled <= MiB // 65536 + 2, pulled


async def test_a_route_can_declare_its_own_body_limit() -> None:
    """The limit a route declares with `max_body` wins over HOOKPOST_MAX_BODY_BYTES."""
    settings = settings_from_env(HOOKPOST_MAX_BODY_BYTES="2048")
    app = FastAPI()
    install_error_handlers(app)
    # ApiRoute reads only the settings of the app state for routes without a token.
    app.state.api = SimpleNamespace(settings=settings)
    router = APIRouter(route_class=ApiRoute)

    @router.post("/default")
    async def default_limit(body: dict[str, Any]) -> dict[str, int]:
        return {"keys": len(body)}

    @router.post("/large", dependencies=[max_body(8192)])
    async def large_limit(body: dict[str, Any]) -> dict[str, int]:
        return {"keys": len(body)}

    app.include_router(router)
    body = {"blob": "x" * 4000}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        error = assert_error(await http.post("/default", json=body), 413, "PAYLOAD_TOO_LARGE")
        assert error["maxBytes"] == 2048
        assert (await http.post("/large", json=body)).json() == {"keys": 1}
        huge = {"blob": "x" * 9000}
        error = assert_error(await http.post("/large", json=huge), 413, "PAYLOAD_TOO_LARGE")
        assert error["maxBytes"] == 8192


# ---------------------------------------------------------------- 429 on ingest


def test_token_bucket_refills_at_the_rate_and_caps_at_the_burst() -> None:
    now = [0.0]
    limiter = OrgRateLimiter(rate_per_s=2, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0  # orgs do not share a bucket
    now[0] = 0.5  # one token back
    assert limiter.take("a") == 0
    assert limiter.take("a") > 0
    now[0] = 100.0  # a long pause refills to the burst, not beyond
    assert [limiter.take("a") for _ in range(4)][3] > 0
    assert OrgRateLimiter(rate_per_s=0, burst=1).take("a") == 0  # 0 turns it off
    assert retry_after_seconds(0.01) == 1 and retry_after_seconds(2.2) == 3


async def test_ingest_beyond_the_org_rate_is_429_with_retry_after(prod_api: ProdApi) -> None:
    variables = {"HOOKPOST_EVENTS_RATE_PER_S": "1", "HOOKPOST_EVENTS_RATE_BURST": "3"}
    async with prod_api(Plan.PRO, **variables) as client:
        accepted = [await client.post(EVENTS, json=EVENT) for _ in range(3)]
        assert [r.status_code for r in accepted] == [202, 202, 202]
        refused = await client.post(EVENTS, json=EVENT)
        error = assert_error(refused, 429, "RATE_LIMITED")
        retry_after = int(refused.headers["Retry-After"])
        assert 1 <= retry_after <= 2
        assert error["retryAfterSeconds"] == retry_after
        # after Retry-After seconds, the org may send again
        await asyncio.sleep(retry_after)
        assert (await client.post(EVENTS, json=EVENT)).status_code == 202
        # other routes are not rate limited
        assert (await client.get(SUBS)).status_code == 200


async def test_one_orgs_flood_does_not_limit_another(prod_api: ProdApi, make_org: Any) -> None:
    variables = {"HOOKPOST_EVENTS_RATE_PER_S": "0.5", "HOOKPOST_EVENTS_RATE_BURST": "2"}
    async with prod_api(Plan.PRO, **variables) as noisy:
        other = await make_org(Plan.PRO)
        headers = {"Authorization": f"Bearer {other.apiToken}"}
        statuses = [(await noisy.post(EVENTS, json=EVENT)).status_code for _ in range(5)]
        assert statuses == [202, 202, 429, 429, 429]
        calm = await noisy.http.post(EVENTS, json=EVENT, headers=headers)
        assert calm.status_code == 202, calm.text


async def test_refused_events_are_not_stored(prod_api: ProdApi, db_pool: Any) -> None:
    variables = {"HOOKPOST_EVENTS_RATE_PER_S": "0.1", "HOOKPOST_EVENTS_RATE_BURST": "2"}
    async with prod_api(Plan.PRO, **variables) as client:
        statuses = [(await client.post(EVENTS, json=EVENT)).status_code for _ in range(6)]
        assert statuses.count(202) == 2 and statuses.count(429) == 4
        stored = await db_pool.fetchval(
            "SELECT count(*) FROM events WHERE organization_id = $1", client.org_id
        )
        assert stored == 2


async def test_unauthenticated_requests_do_not_spend_an_orgs_tokens(
    prod_api: ProdApi,
) -> None:
    variables = {"HOOKPOST_EVENTS_RATE_PER_S": "0.1", "HOOKPOST_EVENTS_RATE_BURST": "1"}
    async with prod_api(Plan.PRO, **variables) as client:
        for _ in range(5):
            assert_error(await client.http.post(EVENTS, json=EVENT), 401, "UNAUTHORIZED")
        assert (await client.post(EVENTS, json=EVENT)).status_code == 202
        assert_error(await client.post(EVENTS, json=EVENT), 429, "RATE_LIMITED")


# ---------------------------------------------------------------- /test sends


async def test_test_sends_are_limited_per_endpoint_then_per_organization(
    settings: Any, make_org: Any
) -> None:
    """A /test POSTs to the endpoint's URL at once, outside backpressure: five in a burst per
    endpoint, twenty per organization, then a shaped 429 with Retry-After."""
    org = await make_org(Plan.FREE)
    headers = {"Authorization": f"Bearer {org.apiToken}"}
    async with running_api(settings) as http:
        ids = []
        for n in range(5):
            created = await http.post(SUBS, json=subscription_body(name=f"t{n}"), headers=headers)
            ids.append(created.json()["id"])
        statuses = [
            (await http.post(f"{SUBS}/{ids[0]}/test", headers=headers)).status_code
            for _ in range(6)
        ]
        assert statuses == [202] * 5 + [429]
        limited = await http.post(f"{SUBS}/{ids[0]}/test", headers=headers)
        assert_error(limited, 429, "RATE_LIMITED")
        assert int(limited.headers["Retry-After"]) >= 1
        # other endpoints of the org go on, up to the org's burst of 20 in all
        others = [
            (await http.post(f"{SUBS}/{ids[1 + n % 4]}/test", headers=headers)).status_code
            for n in range(16)
        ]
        assert others == [202] * 15 + [429]
        assert (
            "organization"
            in (await http.post(f"{SUBS}/{ids[4]}/test", headers=headers)).json()["error"][
                "message"
            ]
        )
