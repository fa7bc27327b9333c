"""A user's whole story through three separate services on the real broker and database."""

from __future__ import annotations

import asyncio
import time

import httpx
import stripe

from harness.receiver import Receiver
from harness.stack import Stack
from libs.domain.signing import verify_v1
from tests.e2e.conftest import auth, create_webhook

SUBS = "/api/v1/webhook-subscriptions"


async def wait_for_status(
    client: httpx.AsyncClient, org: dict[str, str], sub_id: str, status: str, timeout: float = 30
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.get(f"{SUBS}/{sub_id}/deliveries", headers=auth(org))
        deliveries = response.json()["deliveries"]
        if deliveries and deliveries[0]["status"] == status:
            return deliveries[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {status} delivery within {timeout}s: {deliveries}")


async def test_event_is_delivered_signed_and_logged(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org()
    url = receiver.script("/orders", [200])
    sub = await create_webhook(
        api_client,
        org,
        SUBS,
        url,
        apiKeyName="X-API-Key",
        apiKeyValue="k-123",
        additionalHeaders={"X-Team": "ops"},
    )

    accepted = await api_client.post(
        "/api/v1/events",
        headers=auth(org),
        json={"type": "mapping.completed", "data": {"mappingJobId": "job_1", "rowCount": 3}},
    )
    assert accepted.status_code == 202, accepted.text
    event_id = accepted.json()["eventId"]

    [request] = await receiver.wait_for("/orders", 1)
    envelope = request.json()
    assert envelope["eventId"] == event_id
    assert envelope["type"] == "mapping.completed"
    assert envelope["apiVersion"] == "2026-06-01"
    assert envelope["data"] == {"mappingJobId": "job_1", "rowCount": 3}
    assert request.headers["X-Webhook-Event"] == "mapping.completed"
    assert request.headers["X-Webhook-Delivery"] == envelope["id"]
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-API-Key"] == "k-123"
    assert request.headers["X-Team"] == "ops"
    assert "traceparent" not in {k.lower() for k in request.headers}
    signature = request.headers["X-Webhook-Signature"]
    verify_v1(request.body, signature, sub["signingSecret"])
    stripe.WebhookSignature.verify_header(
        request.body.decode(), signature, sub["signingSecret"], tolerance=300
    )

    delivery = await wait_for_status(api_client, org, sub["id"], "SUCCEEDED")
    assert delivery["eventId"] == event_id
    assert delivery["attemptCount"] == 1
    [attempt] = delivery["attempts"]
    assert attempt["httpStatus"] == 200 and attempt["succeeded"] is True
    assert attempt["id"] == envelope["id"]


async def test_test_call_reaches_the_endpoint_with_its_delivery_id(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org()
    sub = await create_webhook(api_client, org, SUBS, receiver.script("/test-hook", [200]))
    response = await api_client.post(f"{SUBS}/{sub['id']}/test", headers=auth(org))
    assert response.status_code == 202, response.text
    delivery_id = response.json()["deliveryId"]
    assert delivery_id.startswith("del_")

    [request] = await receiver.wait_for("/test-hook", 1)
    assert request.headers["X-Webhook-Event"] == "webhook.test"
    assert request.headers["X-Webhook-Delivery"] == delivery_id
    verify_v1(request.body, request.headers["X-Webhook-Signature"], sub["signingSecret"])


async def test_dead_delivery_is_retried_on_request_with_the_same_event_id(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org()
    url = receiver.script("/flaky", [400, 400, 400, 400, 200])
    sub = await create_webhook(api_client, org, SUBS, url)
    accepted = await api_client.post(
        "/api/v1/events", headers=auth(org), json={"type": "mapping.completed", "data": {}}
    )
    event_id = accepted.json()["eventId"]

    dead = await wait_for_status(api_client, org, sub["id"], "DEAD")
    assert dead["attemptCount"] == 4
    assert [a["httpStatus"] for a in dead["attempts"]] == [400, 400, 400, 400]
    assert len(receiver.on("/flaky")) == 4

    retried = await api_client.post(f"/api/v1/deliveries/{dead['id']}/retry", headers=auth(org))
    assert retried.status_code == 202, retried.text
    requests = await receiver.wait_for("/flaky", 5)
    assert {r.json()["eventId"] for r in requests} == {event_id}
    assert len({r.headers["X-Webhook-Delivery"] for r in requests}) == 5
    succeeded = await wait_for_status(api_client, org, sub["id"], "SUCCEEDED")
    assert succeeded["attemptCount"] == 5

    again = await api_client.post(f"/api/v1/deliveries/{dead['id']}/retry", headers=auth(org))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "CONFLICT"


async def test_plan_downgrade_stops_deliveries_of_gated_events(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org(plan="PRO")
    sub = await create_webhook(
        api_client, org, SUBS, receiver.script("/gated", [200]), events=["MAPPING_ERROR_RESOLVED"]
    )
    downgrade = await api_client.put(
        f"/api/v1/admin/organizations/{org['organizationId']}/plan",
        headers={"Authorization": f"Bearer {stack.env['HOOKPOST_ADMIN_TOKEN']}"},
        json={"plan": "FREE"},
    )
    assert downgrade.status_code == 200, downgrade.text
    current = (await api_client.get(f"{SUBS}/{sub['id']}", headers=auth(org))).json()
    assert current["status"] == "INACTIVE"
    assert current["deactivatedReason"] == "PLAN_DOWNGRADE"

    # A control endpoint proves the pipeline ran while the gated one stayed silent.
    control = await create_webhook(api_client, org, SUBS, receiver.script("/control", [200]))
    for event_type in ("mapping.error.resolved", "mapping.completed"):
        response = await api_client.post(
            "/api/v1/events", headers=auth(org), json={"type": event_type, "data": {}}
        )
        assert response.status_code == 202
    await receiver.wait_for("/control", 1)
    await asyncio.sleep(0.5)
    assert receiver.on("/gated") == []
    assert control["id"]


async def test_event_accepted_while_the_broker_is_unreachable_is_relayed_later(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org()
    await create_webhook(api_client, org, SUBS, receiver.script("/relayed", [200]))

    # An api whose broker is unreachable still accepts: the event waits in the outbox.
    cut_off = await stack.spawn(
        "api",
        "api-cut-off",
        ready_path="/healthz",  # not ready by design: its broker is unreachable
        HOOKPOST_AMQP_URL="amqp://guest:guest@127.0.0.1:1/",
    )
    try:
        async with httpx.AsyncClient(base_url=cut_off.url()) as client:
            response = await client.post(
                "/api/v1/events",
                headers=auth(org),
                json={"type": "mapping.completed", "data": {"via": "outbox"}},
            )
    finally:
        await stack.stop(cut_off)
    assert response.status_code == 202, response.text
    event_id = response.json()["eventId"]

    # The running api's relay finds the unconfirmed event and publishes it.
    [request] = await receiver.wait_for("/relayed", 1, timeout=30)
    assert request.json()["eventId"] == event_id
    assert request.json()["data"] == {"via": "outbox"}
