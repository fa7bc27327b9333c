"""An endpoint's own `rateLimitPerSecond`, set through the api on every door that has
endpoints, holds a real receiver to that rate (libs/delivery/limits.py, a token bucket
shared by the engines: a burst of at most the rate, then the rate).

Real tiers (scale 1): a step with no room waits in the real 1 s tier.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import combinations

import asyncpg
import httpx
import pytest

from harness.receiver import Receiver
from harness.receiver.behaviours import Ok
from libs.domain.endpoint_kinds import MAX_RATE_LIMIT_PER_S
from libs.infra.db.migrate import migrate
from tests.support.stacks import Pipeline

pytestmark = pytest.mark.e2e

RATE = 5
EVENTS = 20
DESTINATIONS = "/api/v1/delivery-destinations"


@pytest.fixture(scope="module")
async def platform(test_env: dict[str, str]) -> AsyncIterator[Pipeline]:
    # A database of its own: engines share an endpoint's rate with every live engine of
    # their database (libs/worker/membership.py), and the suite's other stacks would leave
    # these two a sliver of it (still within the rate, but slower than any timeout).
    server = test_env["HOOKPOST_DATABASE_URL"].rpartition("/")[0]
    name = f"{test_env['HOOKPOST_BROKER_PREFIX']}_ratelimit"
    await migrate(f"{server}/{name}")
    try:
        async with Pipeline(
            test_env,
            "ratelimit",
            HOOKPOST_RETRY_DELAY_SCALE="1.0",
            HOOKPOST_DATABASE_URL=f"{server}/{name}",
        ) as pipe:
            await pipe.stack.start(api=True, dispatchers=1, senders=1)
            yield pipe
    finally:
        admin = await asyncpg.connect(f"{server}/postgres")
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def client(platform: Pipeline) -> AsyncIterator[httpx.AsyncClient]:
    org = platform.stack.create_org("FREE")
    headers = {"Authorization": f"Bearer {org['apiToken']}"}
    async with httpx.AsyncClient(
        base_url=platform.stack.api_url, headers=headers, timeout=10
    ) as client:
        yield client


async def test_a_receiver_sees_no_more_than_the_rate_it_asked_for(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    body = {
        "type": "WEBHOOK",
        "webhookUrl": receiver.behave("/limited", Ok()),
        "events": ["mapping.completed"],
        "rateLimitPerSecond": RATE,
    }
    created = await client.post(DESTINATIONS, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["rateLimitPerSecond"] == RATE
    event = {"type": "mapping.completed", "data": {"mappingJobId": "job_1", "rowCount": 1}}
    for _ in range(EVENTS):
        assert (await client.post("/api/v1/events", json=event)).status_code == 202

    arrivals = [r.received_at for r in await receiver.wait_for("/limited", EVENTS, timeout=60)]
    arrivals.sort()
    # Between any two arrivals, no more than a full bucket plus what refilled meanwhile
    # (10 % and one request of slack for the clocks). Unthrottled, all 20 land in ~0.2 s.
    for i, j in combinations(range(len(arrivals)), 2):
        allowed = RATE + RATE * (arrivals[j] - arrivals[i]) * 1.1 + 1
        assert j - i + 1 <= allowed, (i, j, arrivals[j] - arrivals[i])
    assert arrivals[-1] - arrivals[0] >= (EVENTS - 2 * RATE) / RATE * 0.9


@pytest.mark.parametrize("bad", [0, -1, MAX_RATE_LIMIT_PER_S + 1, "fast"])
async def test_a_rate_out_of_bounds_is_a_400(
    client: httpx.AsyncClient, receiver: Receiver, bad: object
) -> None:
    body = {"webhookUrl": receiver.url("/x"), "events": ["MAPPING_COMPLETED"]}
    answer = await client.post(
        "/api/v1/webhook-subscriptions", json={**body, "rateLimitPerSecond": bad}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "BAD_REQUEST"


async def test_every_door_keeps_and_shows_its_rate(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    url = receiver.url("/shown")
    sub = await client.post(
        "/api/v1/webhook-subscriptions",
        json={"webhookUrl": url, "events": ["MAPPING_COMPLETED"], "rateLimitPerSecond": 0.5},
    )
    assert sub.json()["rateLimitPerSecond"] == 0.5
    export = await client.post("/api/v1/export-webhooks", json={"url": url})
    assert export.status_code == 201, export.text
    assert export.json()["rateLimitPerSecond"] is None
    assert export.json()["deactivatedReason"] is None
    path = f"/api/v1/export-webhooks/{export.json()['id']}"
    put = await client.put(path, json={"url": url, "rateLimitPerSecond": 12})
    assert put.status_code == 200, put.text
    assert (await client.get(path)).json()["rateLimitPerSecond"] == 12
    # PUT replaces the whole endpoint: without the field, no limit.
    await client.put(path, json={"url": url})
    assert (await client.get(path)).json()["rateLimitPerSecond"] is None
