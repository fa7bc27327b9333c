"""A batch through the real api, dispatcher and senders: every accepted event of one
`POST /api/v1/events/batch` arrives once, a bad item is reported and delivers nothing."""

from __future__ import annotations

import collections

import httpx

from harness.receiver import Receiver
from harness.stack import Stack
from tests.e2e.conftest import auth, create_webhook

BATCH = "/api/v1/events/batch"


async def test_every_event_of_a_batch_is_delivered_once(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org()
    url = receiver.url("/batch-e2e")
    await create_webhook(api_client, org, "/api/v1/webhook-subscriptions", url)
    events: list[object] = [
        {"type": "mapping.completed", "data": {"n": n % 150}, "idempotencyKey": f"k{n % 150}"}
        for n in range(200)  # 150 keys: the last 50 repeat the first 50 (same event: same id)
    ]
    events[7] = {"type": "mapping.completed", "data": "not an object"}
    response = await api_client.post(BATCH, headers=auth(org), json={"events": events})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [400 if i == 7 else 202 for i in range(200)]
    accepted = {r["eventId"] for r in results if r["status"] == 202}
    # Item 7 failed before its key was taken: item 157, with that key, is a new event.
    assert len(accepted) == 150
    assert results[157]["eventId"] not in {results[n].get("eventId") for n in range(150)}
    assert results[151]["eventId"] == results[1]["eventId"]

    arrived = await receiver.wait_for("/batch-e2e", len(accepted), timeout=60)
    counts = collections.Counter(request.json()["eventId"] for request in arrived)
    assert set(counts) == accepted
    assert set(counts.values()) == {1}
