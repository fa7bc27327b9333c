"""published_at marks: written after the answer, in batches, flushed at shutdown; the relay
leaves marked events alone and republishes one whose mark was lost."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import asyncpg
import pytest

from libs.infra.broker.topology import Topology
from libs.infra.settings import Settings
from services.api.events import publishing, repository
from tests.api.broker_probe import bind_probe_queue, messages_for
from tests.api.conftest import Client, running_api, wait_until

EVENTS = "/api/v1/events"
EVENT = {"type": "mapping.completed", "data": {"jobId": "j"}}


@pytest.fixture
def mark_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The ids of every published_at UPDATE the api sends (it still runs)."""
    calls: list[list[str]] = []
    real = repository.mark_published

    async def recording(conn: Any, event_ids: list[str]) -> None:
        calls.append(list(event_ids))
        await real(conn, event_ids)

    monkeypatch.setattr(repository, "mark_published", recording)
    return calls


async def unmarked(pool: asyncpg.Pool, event_ids: list[str]) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM events WHERE id = ANY($1::text[]) AND published_at IS NULL",
        event_ids,
    )


def all_marked(pool: asyncpg.Pool, event_ids: list[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await unmarked(pool, event_ids) == 0

    return check


async def event_ids(queue: aio_pika.abc.AbstractQueue, seconds: float) -> list[str]:
    """Every event published to the queue for `seconds`, once per message carrying it."""
    return [event_id for events in await messages_for(queue, seconds) for event_id in events]


async def test_the_answer_does_not_wait_for_the_mark(
    settings: Settings, make_org: Callable, db_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()
    real = repository.mark_published

    async def held(conn: Any, event_ids: list[str]) -> None:
        await release.wait()
        await real(conn, event_ids)

    monkeypatch.setattr(repository, "mark_published", held)
    org = await make_org()
    async with running_api(settings) as http:
        response = await asyncio.wait_for(
            http.post(EVENTS, json=EVENT, headers={"Authorization": f"Bearer {org.apiToken}"}),
            timeout=5,
        )
        assert response.status_code == 202
        event_id = response.json()["eventId"]
        assert await unmarked(db_pool, [event_id]) == 1  # answered, not yet marked
        release.set()
        await wait_until(all_marked(db_pool, [event_id]))


async def test_marks_of_concurrent_requests_share_an_update(
    mark_calls: list[list[str]], client: Client, db_pool: asyncpg.Pool
) -> None:
    responses = await asyncio.gather(*(client.post(EVENTS, json=EVENT) for _ in range(20)))
    ids = [r.json()["eventId"] for r in responses]
    await wait_until(all_marked(db_pool, ids))
    marked = [event_id for call in mark_calls for event_id in call]
    assert sorted(marked) == sorted(ids)  # each once
    assert len(mark_calls) < len(ids)


async def test_the_relay_leaves_marked_events_alone(
    client: Client,
    settings: Settings,
    db_pool: asyncpg.Pool,
    amqp: aio_pika.abc.AbstractChannel,
    topology: Topology,
) -> None:
    probe = await bind_probe_queue(amqp, topology.events_exchange.name, "#")
    responses = await asyncio.gather(*(client.post(EVENTS, json=EVENT) for _ in range(10)))
    ids = {r.json()["eventId"] for r in responses}
    # Past the grace period and a few relay rounds: only the inline publish of each event.
    seen = await event_ids(
        probe, settings.outbox_relay_grace_s + 3 * settings.outbox_relay_interval_s
    )
    assert collections.Counter(seen) == collections.Counter(ids)
    assert await unmarked(db_pool, list(ids)) == 0


async def test_an_event_whose_mark_failed_is_republished_by_the_relay(
    settings: Settings,
    make_org: Callable,
    db_pool: asyncpg.Pool,
    amqp: aio_pika.abc.AbstractChannel,
    topology: Topology,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lost mark costs a duplicate message (the dispatcher drops it), never an event."""
    real = repository.mark_published

    async def failing_once(conn: Any, event_ids: list[str]) -> None:
        monkeypatch.setattr(repository, "mark_published", real)  # the relay's marks work
        raise asyncpg.exceptions.ConnectionDoesNotExistError("lost")

    monkeypatch.setattr(repository, "mark_published", failing_once)
    org = await make_org()
    probe = await bind_probe_queue(amqp, topology.events_exchange.name, "#")
    async with running_api(settings) as http:
        response = await http.post(
            EVENTS, json=EVENT, headers={"Authorization": f"Bearer {org.apiToken}"}
        )
        event_id = response.json()["eventId"]
        await wait_until(all_marked(db_pool, [event_id]), timeout=15)
        seen = await event_ids(probe, 0.5)
    assert seen == [event_id, event_id]  # inline, then the relay's


async def test_marks_still_collected_are_written_at_shutdown(
    settings: Settings, make_org: Callable, db_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Marks that would wait a minute, and a relay that would not touch the event for an hour:
    # only the shutdown flush can mark it.
    monkeypatch.setattr(publishing, "MARK_DELAY_S", 60.0)
    slow = settings.model_copy(update={"outbox_relay_grace_s": 3600.0})
    org = await make_org()
    async with running_api(slow) as http:
        response = await http.post(
            EVENTS, json=EVENT, headers={"Authorization": f"Bearer {org.apiToken}"}
        )
        event_id = response.json()["eventId"]
        await asyncio.sleep(0.3)
        assert await unmarked(db_pool, [event_id]) == 1
    assert await unmarked(db_pool, [event_id]) == 0


def test_marks_wait_far_less_than_the_default_relay_grace_period() -> None:
    default_grace_s = Settings.model_fields["outbox_relay_grace_s"].default
    assert publishing.MARK_DELAY_S <= default_grace_s / 10
