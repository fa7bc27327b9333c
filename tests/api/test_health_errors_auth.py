"""Operations routes, the error shape for malformed input, and bearer authentication."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from libs.infra.settings import Settings
from tests.api.conftest import (
    UNREACHABLE_AMQP_URL,
    Client,
    assert_error,
    running_api,
    subscription_body,
)


async def test_healthz_and_readyz_with_everything_up(http: httpx.AsyncClient) -> None:
    health = await http.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "broker": True}


async def test_readyz_is_503_while_the_broker_is_unreachable(settings: Settings) -> None:
    down = settings.model_copy(update={"amqp_url": UNREACHABLE_AMQP_URL})
    async with running_api(down) as http:
        assert (await http.get("/healthz")).status_code == 200  # alive, just not ready
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"database": True, "broker": False}


async def test_metrics_docs_and_openapi(client: Client) -> None:
    await client.get("/api/v1/webhook-subscriptions")
    metrics = await client.http.get("/metrics")
    assert metrics.status_code == 200
    assert "hookpost_api_http_responses_total" in metrics.text
    assert (await client.http.get("/docs")).status_code == 200
    spec = (await client.http.get("/openapi.json")).json()
    assert spec["info"]["title"] == "hookpost"
    assert "/api/v1/webhook-subscriptions/{subscription_id}/rotate-secret" in spec["paths"]


async def test_unknown_route_and_wrong_method_are_shaped(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/api/v1/nothing-here"), 404, "NOT_FOUND")
    assert_error(await http.delete("/healthz"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/webhook-subscriptions"),
        ("POST", "/api/v1/webhook-subscriptions"),
        ("GET", "/api/v1/webhook-subscriptions/sub_x"),
        ("PUT", "/api/v1/webhook-subscriptions/sub_x"),
        ("DELETE", "/api/v1/webhook-subscriptions/sub_x"),
        ("POST", "/api/v1/webhook-subscriptions/sub_x/rotate-secret"),
        ("GET", "/api/v1/webhook-subscriptions/sub_x/deliveries"),
        ("POST", "/api/v1/webhook-subscriptions/sub_x/test"),
        ("POST", "/api/v1/events"),
        ("GET", "/api/v1/events/evt_x"),
        ("POST", "/api/v1/deliveries/del_x/retry"),
        ("GET", "/api/v1/audit-log"),
    ],
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer hpk_not-a-real-token", "Basic dXNlcjpwdw==", "Bearer "]
)
async def test_every_org_route_needs_a_valid_token(
    http: httpx.AsyncClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await http.request(method, path, headers=headers, json=subscription_body())
    assert_error(response, 401, "UNAUTHORIZED")


async def test_malformed_json_is_a_400(client: Client) -> None:
    response = await client.post(
        "/api/v1/webhook-subscriptions",
        content=b'{"webhookUrl": "https://localhost/x", "events": [',
        headers={"Content-Type": "application/json"},
    )
    error = assert_error(response, 400, "BAD_REQUEST")
    assert "JSON" in error["message"]


async def test_validation_errors_list_details(client: Client) -> None:
    response = await client.post("/api/v1/webhook-subscriptions", json={"events": "nope"})
    error = assert_error(response, 400, "BAD_REQUEST")
    fields = {detail["field"] for detail in error["details"]}
    assert fields == {"webhookUrl", "events"}


BAD_SUBSCRIPTION_BODIES: list[Any] = [
    [],
    "a string",
    42,
    None,
    {},
    {"webhookUrl": "https://localhost/x"},
    {"events": ["MAPPING_COMPLETED"]},
    subscription_body(webhookUrl=123),
    subscription_body(webhookUrl=None),
    subscription_body(events=None),
    subscription_body(events=[1, 2]),
    subscription_body(events=[["MAPPING_COMPLETED"]]),
    subscription_body(name=5),
    subscription_body(name="nul\u0000byte"),
    subscription_body(name="x" * 201),
    subscription_body(status="active"),
    subscription_body(status=None),
    subscription_body(additionalHeaders=["X-A"]),
    subscription_body(additionalHeaders={"X-A": 1}),
    subscription_body(additionalHeaders={"X-A": "a\u0000b"}),
    subscription_body(apiKeyName=["X"]),
    subscription_body(webhookUrl="not a url"),
    subscription_body(webhookUrl="https://"),
    subscription_body(webhookUrl="ftp://localhost/x"),
    subscription_body(webhookUrl="https://localhost:99999/x"),
    subscription_body(webhookUrl="https://user:pw@localhost/x"),
    subscription_body(webhookUrl="https://localhost/" + "a" * 3000),
    subscription_body(webhookUrl="https://[::1/x"),
]


@pytest.mark.parametrize("body", BAD_SUBSCRIPTION_BODIES)
async def test_bad_subscription_bodies_are_400_on_create_and_replace(
    client: Client, body: Any
) -> None:
    assert_error(await client.post("/api/v1/webhook-subscriptions", json=body), 400, "BAD_REQUEST")
    created = await client.post("/api/v1/webhook-subscriptions", json=subscription_body())
    sub_id = created.json()["id"]
    replaced = await client.put(f"/api/v1/webhook-subscriptions/{sub_id}", json=body)
    assert_error(replaced, 400, "BAD_REQUEST")


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"type": 5},
        {"type": "mapping.completed", "data": []},
        {"type": "mapping.completed", "data": "x"},
        {"type": "mapping.completed", "data": {"n": 2**70}},
        {"type": "mapping.completed", "data": {"s": "nul\u0000"}},
        {"type": "mapping.completed", "data": {"s": "\ud800"}},
        {"type": "MAPPING_COMPLETED", "data": {}},
        {"type": "no.such.type", "data": {}},
        {"type": "webhook.test", "data": {}},
    ],
)
async def test_bad_event_bodies_are_400(client: Client, body: Any) -> None:
    # json.dumps escapes a lone surrogate (\ud800) the way a careless client would send it.
    response = await client.post(
        "/api/v1/events",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 400, "BAD_REQUEST")


@pytest.mark.parametrize("query", ["limit=abc", "limit=0", "limit=-5", "activeOnly=maybe"])
async def test_bad_query_parameters_are_400(client: Client, query: str) -> None:
    created = await client.post("/api/v1/webhook-subscriptions", json=subscription_body())
    sub_id = created.json()["id"]
    path = (
        f"/api/v1/webhook-subscriptions?{query}"
        if query.startswith("activeOnly")
        else f"/api/v1/webhook-subscriptions/{sub_id}/deliveries?{query}"
    )
    assert_error(await client.get(path), 400, "BAD_REQUEST")
    if query.startswith("limit"):
        assert_error(await client.get(f"/api/v1/audit-log?{query}"), 400, "BAD_REQUEST")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"type": "mapping.completed", "data": {}}', "text/plain"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b'{"data": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001, "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"", "application/json"),
        (b"null", "application/json"),
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/webhook-subscriptions"])
async def test_hostile_raw_bodies_are_400(
    client: Client, path: str, content: bytes, content_type: str
) -> None:
    response = await client.post(path, content=content, headers={"Content-Type": content_type})
    if path == "/api/v1/events" and content_type == "text/plain":
        # ingest reads a JSON object whatever Content-Type it declares (tests/api/test_ingest.py)
        assert response.status_code == 202, response.text
        return
    assert_error(response, 400, "BAD_REQUEST")
