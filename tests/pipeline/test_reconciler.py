"""The reconciler re-drives what PostgreSQL says is overdue, whatever the broker did.

In-process passes against the real database and broker show exactly what a pass publishes
(read back from this test's own queues); the last test runs the real services: work that no
queue holds reaches its receiver, once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aio_pika
import asyncpg
import pytest
from faststream.rabbit import RabbitBroker

from harness.receiver import Receiver
from libs.delivery.metrics import EngineMetrics
from libs.delivery.ordering import LineReleases
from libs.delivery.publisher import StepPublisher
from libs.infra.broker.messages import (
    ATTEMPT_HEADER,
    SCHEDULE_START_HEADER,
    DeliveryTask,
    EventMessage,
)
from libs.infra.broker.topology import Topology
from libs.infra.settings import get_settings
from services.dispatcher.reconciler import Reconciler
from tests.support.factories import (
    EndpointRow,
    deliveries_when,
    event_message,
    insert_event,
    insert_pending_delivery,
    make_endpoint,
    succeeded,
)
from tests.support.stacks import Pipeline

LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)  # before anything else the suite leaves overdue


@dataclass
class Setup:
    reconciler: Reconciler
    channel: aio_pika.abc.AbstractChannel
    topology: Topology

    async def taken(self, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Every message in one of this test's queues (confirmed publishes are there)."""
        found = []
        declared = await self.channel.get_queue(queue)
        while (message := await declared.get(no_ack=True, fail=False)) is not None:
            found.append(message)
        return found

    async def steps(self) -> dict[str, tuple[int, int]]:
        """Delivery id → (attempt, schedule start) of each step published to the senders."""
        return {
            DeliveryTask.model_validate_json(m.body).delivery_id: (
                m.headers[ATTEMPT_HEADER],
                m.headers[SCHEDULE_START_HEADER],
            )
            for m in await self.taken(self.topology.sender_queue.name)
        }

    async def events(self) -> list[str]:
        messages = await self.taken(self.topology.dispatcher_queue.name)
        return [EventMessage.model_validate_json(m.body).id for m in messages]


@pytest.fixture
async def setup(
    test_env: dict[str, str], db_pool: asyncpg.Pool, broker: tuple[RabbitBroker, Topology]
) -> AsyncIterator[Setup]:
    real_broker, topology = broker
    settings = get_settings().model_copy(
        update={"redrive_events_after_s": 60.0, "redrive_deliveries_after_s": 300.0}
    )
    publisher = StepPublisher(real_broker, topology, EngineMetrics("dispatcher"))
    releases = LineReleases(db_pool, settings.payload_cap_bytes)
    reconciler = Reconciler(db_pool, real_broker, topology, publisher, settings, releases)
    connection = await aio_pika.connect(test_env["HOOKPOST_AMQP_URL"])
    async with connection:
        yield Setup(reconciler, await connection.channel(), topology)


@pytest.fixture
async def endpoint(db_pool: asyncpg.Pool, make_org: Callable) -> EndpointRow:
    """A new org's endpoint; nothing is sent to it (the reconciler only publishes steps)."""
    org = await make_org()
    return await make_endpoint(db_pool, org.organizationId, "https://x.test/h", ["a"])


async def overdue_delivery(pool: asyncpg.Pool, endpoint: EndpointRow, **columns: object) -> str:
    delivery_id = await insert_pending_delivery(pool, endpoint.organization_id, endpoint.id)
    await pool.execute(
        "UPDATE deliveries SET next_attempt_at = $2 WHERE id = $1", delivery_id, LONG_AGO
    )
    for column, value in columns.items():
        await pool.execute(f"UPDATE deliveries SET {column} = $2 WHERE id = $1", delivery_id, value)
    return delivery_id


async def test_overdue_deliveries_are_re_driven_at_the_step_they_are_at_once_per_bound(
    setup: Setup, db_pool: asyncpg.Pool, endpoint: EndpointRow
) -> None:
    never_tried = await overdue_delivery(db_pool, endpoint)
    retry_lost = await overdue_delivery(db_pool, endpoint, attempt_count=2, schedule_start=1)
    after_manual_retry = await overdue_delivery(
        db_pool, endpoint, attempt_count=5, schedule_start=5
    )
    on_time = await insert_pending_delivery(db_pool, endpoint.organization_id, endpoint.id)
    ended = await overdue_delivery(db_pool, endpoint, status="SUCCEEDED")

    await setup.reconciler.run_once()
    steps = await setup.steps()
    assert steps[never_tried] == (1, 1)
    assert steps[retry_lost] == (2, 1)  # its last recorded attempt: the engine does what follows
    assert steps[after_manual_retry] == (5, 5)
    assert on_time not in steps and ended not in steps

    await setup.reconciler.run_once()  # their clocks restarted: not again before the bound
    assert not {never_tried, retry_lost, after_manual_retry} & set(await setup.steps())


async def test_overdue_events_are_published_again_and_dispatched_ones_are_not(
    setup: Setup, db_pool: asyncpg.Pool, make_org
) -> None:
    org = await make_org()
    lost, dispatched, fresh = (event_message(org.organizationId) for _ in range(3))
    for event in (lost, dispatched, fresh):
        await insert_event(db_pool, event)
    await db_pool.execute(
        "UPDATE events SET published_at = $2 WHERE id = ANY ($1)",
        [lost.id, dispatched.id],
        LONG_AGO,
    )
    await db_pool.execute("UPDATE events SET dispatched_at = now() WHERE id = $1", dispatched.id)

    await setup.reconciler.run_once()
    redriven = await setup.events()
    assert lost.id in redriven and dispatched.id not in redriven and fresh.id not in redriven
    published_at = await db_pool.fetchval("SELECT published_at FROM events WHERE id = $1", lost.id)
    assert published_at > datetime.now(UTC) - timedelta(minutes=1)  # its clock restarted


async def test_a_poison_message_s_work_is_left_alone(
    setup: Setup, db_pool: asyncpg.Pool, endpoint: EndpointRow
) -> None:
    poisoned = await overdue_delivery(db_pool, endpoint)
    await db_pool.execute(
        "INSERT INTO poison_messages (queue, exchange, routing_key, message_id, body)"
        " VALUES ('q', 'x', 'send', $1, '\\x00')",
        poisoned,
    )
    await setup.reconciler.run_once()
    assert poisoned not in await setup.steps()

    await db_pool.execute(
        "UPDATE poison_messages SET replayed_at = now() WHERE message_id = $1", poisoned
    )
    await setup.reconciler.run_once()
    assert poisoned in await setup.steps()


async def test_work_whose_publish_is_not_confirmed_stays_overdue(
    setup: Setup, db_pool: asyncpg.Pool, endpoint: EndpointRow
) -> None:
    delivery = await overdue_delivery(db_pool, endpoint)
    await setup.channel.queue_delete(setup.topology.sender_queue.name)  # unroutable: returned
    await setup.reconciler.run_once()
    due = await db_pool.fetchval("SELECT next_attempt_at FROM deliveries WHERE id = $1", delivery)
    assert due == LONG_AGO


async def test_an_ordered_line_left_without_a_head_is_released(
    setup: Setup, db_pool: asyncpg.Pool, endpoint: EndpointRow
) -> None:
    """Its head ended, and the release that should have followed never ran (a crash): the
    earliest HELD delivery goes, once, its step carrying the line's key; a line still in
    flight is left alone."""
    headless = [await overdue_delivery(db_pool, endpoint) for _ in "ab"]
    in_flight = [await overdue_delivery(db_pool, endpoint) for _ in "ab"]
    for ids, key, head in ((headless, "lost", "HELD"), (in_flight, "busy", "PENDING")):
        await db_pool.execute(
            "UPDATE deliveries SET status = 'HELD', ordering_key = $2, updated_at = $3"
            " WHERE id = ANY ($1::text[])",
            ids,
            key,
            LONG_AGO,
        )
        await db_pool.execute("UPDATE deliveries SET status = $2 WHERE id = $1", ids[0], head)

    redriven = await setup.reconciler.run_once()
    assert redriven.lines >= 1
    messages = await setup.taken(setup.topology.sender_queue.name)
    tasks = {t.delivery_id: t for t in (DeliveryTask.model_validate_json(m.body) for m in messages)}
    assert tasks[headless[0]].ordering_key == "lost"
    assert not {headless[1], in_flight[1]} & set(tasks)
    statuses = await db_pool.fetch(
        "SELECT id, status FROM deliveries WHERE id = ANY ($1::text[])", headless + in_flight
    )
    assert {row["id"]: row["status"] for row in statuses} == {
        headless[0]: "PENDING",
        headless[1]: "HELD",
        in_flight[0]: "PENDING",
        in_flight[1]: "HELD",
    }
    await setup.reconciler.run_once()  # the line has a head again: nothing more
    assert headless[1] not in {
        DeliveryTask.model_validate_json(m.body).delivery_id
        for m in await setup.taken(setup.topology.sender_queue.name)
    }


@pytest.mark.e2e
async def test_work_no_queue_holds_reaches_its_receiver_once(
    test_env: dict[str, str], db_pool: asyncpg.Pool, make_org, receiver: Receiver
) -> None:
    async with Pipeline(
        test_env,
        "reconcile",
        HOOKPOST_RECONCILE_INTERVAL_S="0.5",
        HOOKPOST_REDRIVE_EVENTS_AFTER_S="1",
        HOOKPOST_REDRIVE_DELIVERIES_AFTER_S="1",
    ) as pipe:
        await pipe.stack.start(api=False, dispatchers=1, senders=1)
        org = await make_org()
        await make_endpoint(db_pool, org.organizationId, receiver.script("/lost", [200]))
        lost_event = event_message(org.organizationId)  # stored, never published
        await insert_event(db_pool, lost_event)
        [first] = await receiver.wait_for("/lost", 1, timeout=30)
        assert first.json()["eventId"] == lost_event.id
        [delivery] = await deliveries_when(db_pool, lost_event.id, succeeded)
        assert delivery["attempt_count"] == 1
        assert len(receiver.on("/lost")) == 1
