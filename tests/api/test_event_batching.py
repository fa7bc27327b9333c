"""Concurrent POST /events share INSERT statements and publishes, and idempotency behaves as
with one each."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

import aio_pika
import asyncpg
import httpx

from libs.infra.broker.topology import Topology
from libs.infra.settings import Settings
from services.api.events import repository
from tests.api.broker_probe import bind_probe_queue, event_ids_of
from tests.api.conftest import Client, assert_error, running_api

EVENTS = "/api/v1/events"


async def drain(queue: aio_pika.abc.AbstractQueue, settle_s: float = 1.0) -> list[list[str]]:
    """Every message on the queue until it stayed empty for `settle_s`: the event ids of each."""
    messages: list[list[str]] = []
    idle_since = asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - idle_since < settle_s:
        message = await queue.get(fail=False, no_ack=True)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        messages.append(event_ids_of(message))
        idle_since = asyncio.get_running_loop().time()
    return messages


async def test_concurrent_posts_share_inserts_and_keep_idempotency_exact(
    insert_batches: list[int],  # first: patched before the app (and its batcher) exists
    client: Client,
    db_pool: asyncpg.Pool,
    amqp: aio_pika.abc.AbstractChannel,
    topology: Topology,
) -> None:
    probe = await bind_probe_queue(amqp, topology.events_exchange.name, "#")
    requests: list[tuple[str, dict[str, Any], str | None]] = []
    requests += [(f"plain-{n}", {"n": n}, None) for n in range(30)]
    # Five keys, each sent four times with one body: one event per key.
    requests += [(f"same-{k}", {"k": k}, f"same-{k}") for k in range(5) for _ in range(4)]
    # One key with two bodies: whichever is stored first wins, the other body is a 409.
    requests += [(f"mixed-{b}", {"body": b}, "mixed") for b in ("a", "b") for _ in range(3)]

    async def post(data: dict[str, Any], key: str | None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        body = {"type": "mapping.completed", "data": data}
        return await client.post(EVENTS, json=body, headers=headers)

    responses = await asyncio.gather(*(post(data, key) for _, data, key in requests))

    # Shared statements: fewer INSERTs than requests, and every request in exactly one.
    assert sum(insert_batches) == len(requests)
    assert max(insert_batches) > 1
    assert len(insert_batches) < len(requests)

    by_label: dict[str, list[httpx.Response]] = collections.defaultdict(list)
    for (label, _, _), response in zip(requests, responses, strict=True):
        by_label[label].append(response)
    plain_ids = [r.json()["eventId"] for n in range(30) for r in by_label[f"plain-{n}"]]
    assert all(r.status_code == 202 for n in range(30) for r in by_label[f"plain-{n}"])
    assert len(set(plain_ids)) == 30
    same_ids = []
    for k in range(5):
        group = by_label[f"same-{k}"]
        assert {r.status_code for r in group} == {202}
        assert len({r.json()["eventId"] for r in group}) == 1
        same_ids.append(group[0].json()["eventId"])
    mixed = by_label["mixed-a"] + by_label["mixed-b"]
    stored = await db_pool.fetchrow(
        "SELECT id, data FROM events WHERE organization_id = $1 AND idempotency_key = 'mixed'",
        client.org_id,
    )
    winner = f"mixed-{stored['data']['body']}"
    loser = "mixed-b" if winner == "mixed-a" else "mixed-a"
    assert [r.json() for r in by_label[winner]] == [{"eventId": stored["id"]}] * 3
    for response in by_label[loser]:
        assert assert_error(response, 409, "CONFLICT")["eventId"] == stored["id"]
    assert len(mixed) == 6

    # Every accepted event stored exactly once, and published exactly once: the events of
    # requests stored together in shared messages (publishing.EventPublishes).
    accepted = {*plain_ids, *same_ids, stored["id"]}
    rows = await db_pool.fetch("SELECT id FROM events WHERE organization_id = $1", client.org_id)
    assert sorted(r["id"] for r in rows) == sorted(accepted)
    messages = await drain(probe)
    assert sorted(event_id for events in messages for event_id in events) == sorted(accepted)
    assert len(messages) < len(accepted)


async def test_a_deleted_org_still_cached_is_refused_without_failing_the_others(
    settings: Settings, make_org: Callable, db_pool: asyncpg.Pool, insert_batches: list[int]
) -> None:
    """Its token stays cached for up to a second; its insert must not break the shared
    statement on the foreign key for the other orgs' requests in the same batch."""
    gone, other = await make_org(), await make_org()
    body = {"type": "mapping.completed", "data": {}}
    async with running_api(settings) as http:

        async def post(token: str, key: str | None = None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"}
            if key:
                headers["Idempotency-Key"] = key
            return await http.post(EVENTS, json=body, headers=headers)

        assert (await post(gone.apiToken)).status_code == 202  # now cached
        await db_pool.execute("DELETE FROM organizations WHERE id = $1", gone.organizationId)
        insert_batches.clear()
        responses = await asyncio.gather(
            post(gone.apiToken),
            post(gone.apiToken, key="k"),
            *(post(other.apiToken) for _ in range(4)),
        )
    assert max(insert_batches) > 1  # they did share a statement
    assert_error(responses[0], 401, "UNAUTHORIZED")
    assert_error(responses[1], 401, "UNAUTHORIZED")
    assert [r.status_code for r in responses[2:]] == [202] * 4
    count = await db_pool.fetchval(
        "SELECT count(*) FROM events WHERE organization_id = $1", other.organizationId
    )
    assert count == 4


async def test_each_caller_gets_its_own_rows_outcome_from_a_shared_insert(
    db_pool: asyncpg.Pool, make_org: Callable
) -> None:
    org = await make_org()
    inserts = repository.EventInserts(db_pool)

    def event(n: int, key: str | None = None) -> repository.NewEvent:
        return repository.NewEvent(
            id=f"evt_batch_{org.organizationId}_{n}",
            organization_id=org.organizationId,
            type="mapping.completed",
            data_json=f'{{"n": {n}}}',
            idempotency_key=key,
            fingerprint="f" if key else None,
        )

    assert await inserts.insert(event(0, key="taken")) is not None
    # One statement: a new row, a key already used (not stored), another new row.
    outcomes = await asyncio.gather(
        inserts.insert(event(1)), inserts.insert(event(2, key="taken")), inserts.insert(event(3))
    )
    await inserts.close()
    assert [outcome is not None for outcome in outcomes] == [True, False, True]
    stored = await db_pool.fetch(
        "SELECT id, created_at FROM events WHERE organization_id = $1 ORDER BY id",
        org.organizationId,
    )
    assert [r["id"] for r in stored] == [event(n).id for n in (0, 1, 3)]
    assert outcomes[0] == stored[1]["created_at"] and outcomes[2] == stored[2]["created_at"]
    # Rows stored without a publish: marked, or a later test's api relays them onto its probe.
    await db_pool.execute(
        "UPDATE events SET published_at = now() WHERE organization_id = $1", org.organizationId
    )
