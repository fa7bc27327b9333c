"""Delivery destinations through the real services: the rotation grace window (two
signatures, then one), Standard Webhooks verified by the `standardwebhooks` package, /test."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import httpx
import pytest
import standardwebhooks
import stripe

from harness.receiver import ReceivedRequest, Receiver
from harness.stack import Stack
from libs.domain.signing import SignatureVerificationError, parse_v1_header, verify_v1
from tests.e2e.conftest import auth, create_webhook

DESTS = "/api/v1/delivery-destinations"


async def fire(client: httpx.AsyncClient, org: dict[str, str], n: int) -> str:
    response = await client.post(
        "/api/v1/events",
        headers=auth(org),
        json={
            "type": "mapping.completed",
            "data": {"mappingJobId": f"job_{n}", "status": "COMPLETED", "rowCount": n},
        },
    )
    assert response.status_code == 202, response.text
    return response.json()["eventId"]


async def deliver_one(
    client: httpx.AsyncClient, org: dict[str, str], receiver: Receiver, path: str, n: int
) -> ReceivedRequest:
    event_id = await fire(client, org, n)
    requests = await receiver.wait_for(path, n)
    assert requests[-1].json()["eventId"] == event_id
    return requests[-1]


def expiry(rotated: dict) -> float:
    return datetime.fromisoformat(rotated["previousSecretExpiresAt"]).timestamp()


def standard_verifies(request: ReceivedRequest, secret: str) -> bool:
    try:
        standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    except standardwebhooks.WebhookVerificationError:
        return False
    return True


def v1_verifies(request: ReceivedRequest, secret: str) -> bool:
    try:
        verify_v1(request.body, request.headers["X-Webhook-Signature"], secret)
    except SignatureVerificationError:
        return False
    return True


async def test_v1_grace_window_signs_with_both_secrets_then_only_the_new_one(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org()
    dest = await create_webhook(api_client, org, DESTS, receiver.script("/grace-v1", [200]))
    old = dest["signingSecret"]
    first = await deliver_one(api_client, org, receiver, "/grace-v1", 1)
    assert len(parse_v1_header(first.headers["X-Webhook-Signature"])[1]) == 1

    response = await api_client.post(
        f"{DESTS}/{dest['id']}/rotate-secret", headers=auth(org), json={"gracePeriodSeconds": 2}
    )
    assert response.status_code == 200, response.text
    rotated = response.json()
    new = rotated["signingSecret"]

    inside = await deliver_one(api_client, org, receiver, "/grace-v1", 2)
    assert inside.received_at < expiry(rotated)
    header = inside.headers["X-Webhook-Signature"]
    assert len(parse_v1_header(header)[1]) == 2
    assert v1_verifies(inside, old) and v1_verifies(inside, new)
    # An independent verifier agrees, with either secret.
    for secret in (old, new):
        stripe.WebhookSignature.verify_header(inside.body.decode(), header, secret, tolerance=300)

    await asyncio.sleep(max(0.0, expiry(rotated) - time.time()) + 0.3)
    after = await deliver_one(api_client, org, receiver, "/grace-v1", 3)
    assert len(parse_v1_header(after.headers["X-Webhook-Signature"])[1]) == 1
    assert v1_verifies(after, new)
    assert not v1_verifies(after, old)


async def test_standard_webhooks_delivery_and_its_grace_window(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org()
    dest = await create_webhook(
        api_client,
        org,
        DESTS,
        receiver.script("/grace-sw", [200]),
        signatureScheme="standard-webhooks",
    )
    old = dest["signingSecret"]
    first = await deliver_one(api_client, org, receiver, "/grace-sw", 1)
    envelope = first.json()
    assert first.headers["webhook-id"] == envelope["eventId"]
    assert abs(int(first.headers["webhook-timestamp"]) - time.time()) < 60
    assert first.headers["X-Webhook-Event"] == "mapping.completed"
    assert first.headers["X-Webhook-Delivery"] == envelope["id"]
    assert "X-Webhook-Signature" not in first.headers
    assert standardwebhooks.Webhook(old).verify(first.body, first.headers) == envelope
    assert len(first.headers["webhook-signature"].split(" ")) == 1

    response = await api_client.post(
        f"{DESTS}/{dest['id']}/rotate-secret", headers=auth(org), json={"gracePeriodSeconds": 2}
    )
    rotated = response.json()
    new = rotated["signingSecret"]
    inside = await deliver_one(api_client, org, receiver, "/grace-sw", 2)
    assert inside.received_at < expiry(rotated)
    assert len(inside.headers["webhook-signature"].split(" ")) == 2
    assert standard_verifies(inside, old) and standard_verifies(inside, new)

    await asyncio.sleep(max(0.0, expiry(rotated) - time.time()) + 0.3)
    after = await deliver_one(api_client, org, receiver, "/grace-sw", 3)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert standard_verifies(after, new)
    assert not standard_verifies(after, old)


@pytest.mark.parametrize("scheme", ["v1", "standard-webhooks"])
async def test_test_call_is_delivered_and_logged(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver, scheme: str
) -> None:
    org = stack.create_org(plan="FREE")
    path = f"/dest-test-{scheme}"
    dest = await create_webhook(
        api_client, org, DESTS, receiver.script(path, [200]), signatureScheme=scheme
    )
    response = await api_client.post(f"{DESTS}/{dest['id']}/test", headers=auth(org))
    assert response.status_code == 202, response.text
    delivery_id = response.json()["deliveryId"]
    [request] = await receiver.wait_for(path, 1)
    assert request.headers["X-Webhook-Event"] == "webhook.test"
    assert request.headers["X-Webhook-Delivery"] == delivery_id
    assert request.json()["data"]["destinationId"] == dest["id"]
    if scheme == "v1":
        assert v1_verifies(request, dest["signingSecret"])
    else:
        assert standard_verifies(request, dest["signingSecret"])

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        listed = await api_client.get(f"{DESTS}/{dest['id']}/deliveries", headers=auth(org))
        deliveries = listed.json()["deliveries"]
        if deliveries and deliveries[0]["status"] == "SUCCEEDED":
            break
        await asyncio.sleep(0.2)
    [delivery] = deliveries
    assert delivery["id"] == delivery_id and delivery["status"] == "SUCCEEDED"
    assert delivery["eventType"] == "webhook.test"
