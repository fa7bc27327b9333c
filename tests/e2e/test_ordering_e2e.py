"""Ordered delivery through the real api, dispatcher and senders: events POSTed with an
`orderingKey` to a subscription created with `orderedDelivery: true` arrive in order while
every first attempt fails, and a mapping job's events carry the job's id as their key."""

from __future__ import annotations

import asyncpg
import httpx

from harness.receiver import FailFirstArrival, Receiver
from harness.stack import Stack
from harness.waiting import eventually
from tests.e2e.conftest import auth, create_webhook
from tests.pipeline.test_ordering import Failing, assert_in_line


async def test_posted_keys_reach_an_ordered_subscription_in_order(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = stack.create_org()
    url = receiver.behave("/ordered-e2e", FailFirstArrival())
    created = await create_webhook(
        api_client, org, "/api/v1/webhook-subscriptions", url, orderedDelivery=True
    )
    assert created["orderedDelivery"] is True
    lines: dict[str, list[str]] = {"a": [], "b": []}
    for _ in range(4):
        for key, line in lines.items():
            response = await api_client.post(
                "/api/v1/events",
                headers=auth(org),
                json={"type": "mapping.completed", "data": {}, "orderingKey": key},
            )
            assert response.status_code == 202, response.text
            line.append(response.json()["eventId"])

    await receiver.wait_for("/ordered-e2e", 16, timeout=60)  # a 500, then a 200, each
    for line in lines.values():
        assert_in_line(receiver.records, line)


async def test_a_mapping_job_s_events_carry_its_id_as_their_key(
    stack: Stack, api_client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    org = stack.create_org()
    job = await api_client.post("/api/v1/mapping-jobs", headers=auth(org), json={})
    assert job.status_code in (200, 201, 202), job.text
    job_id = job.json()["jobId"]
    done = await api_client.post(
        f"/api/v1/mapping-jobs/{job_id}/complete",
        headers=auth(org),
        json={"stats": {"total": 1, "matched": 1, "unmatched": 0}, "results": [{"a": 1}]},
    )
    assert done.status_code == 200, done.text
    keys = await eventually(
        lambda: db_pool.fetch(
            "SELECT type, ordering_key FROM events WHERE organization_id = $1",
            org["organizationId"],
        ),
        lambda rows: len(rows) >= 1,
    )
    assert {(row["type"], row["ordering_key"]) for row in keys} == {("mapping.completed", job_id)}


async def test_a_head_that_dies_lets_its_line_go_on(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    """Its four attempts fail (DEAD through the dead-letter queue, about 5 s here): the next
    event of its key goes then, not before."""
    org = stack.create_org()
    behaviour = Failing()
    url = receiver.behave("/dies-e2e", behaviour)
    await create_webhook(
        api_client, org, "/api/v1/delivery-destinations", url, orderedDelivery=True
    )
    ids = []
    for _ in range(2):
        response = await api_client.post(
            "/api/v1/events",
            headers=auth(org),
            json={"type": "mapping.completed", "data": {}, "orderingKey": "k"},
        )
        ids.append(response.json()["eventId"])
    behaviour.always.add(ids[0])

    await receiver.wait_for("/dies-e2e", 5, timeout=60)  # four 500s, then the next event
    head = [r for r in receiver.records if r.event_id == ids[0]]
    [after] = [r for r in receiver.records if r.event_id == ids[1]]
    assert len(head) == 4 and after.arrived >= max(r.answered or 0 for r in head)
    await eventually(
        lambda: db_pool.fetch(
            "SELECT status FROM deliveries WHERE event_id = ANY ($1::text[]) ORDER BY event_id",
            ids,
        ),
        lambda rows: [row["status"] for row in rows] == ["DEAD", "SUCCEEDED"],
    )
