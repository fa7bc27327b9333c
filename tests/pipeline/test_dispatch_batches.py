"""Events in flight together share the dispatcher's statements: real PostgreSQL, real RabbitMQ.

The Dispatcher runs in this process (its repository on a reset-free worker pool, its
publisher on a real broker with confirms) so the test can count the statements each
connection runs (asyncpg's query logger) and read every task the batch published from the
real sender queue. The last test runs two real dispatcher processes on one queue.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aio_pika
import asyncpg
import pytest
from faststream.rabbit import RabbitBroker

from harness.waiting import eventually
from libs.delivery.metrics import EngineMetrics
from libs.delivery.publisher import StepPublisher
from libs.domain.ids import IdPrefix, new_id
from libs.domain.plans import Plan
from libs.infra.broker.messages import (
    ATTEMPT_HEADER,
    SCHEDULE_START_HEADER,
    DeliveryStep,
    DeliveryTask,
    EventMessage,
)
from libs.infra.broker.topology import Topology
from libs.infra.db.pool import create_pool
from libs.worker.consumers import Verdict
from services.dispatcher.handler import Dispatcher, Publisher
from tests.pipeline.conftest import NO_FIRST_ATTEMPTS_HERE
from tests.pipeline.dispatch_replicas import (
    PENDING_LIMIT,
    FlakyPublisher,
    Replica,
    SlowPublisher,
    StatementLog,
    Tasks,
)
from tests.support.factories import (
    deliveries_of,
    event_message,
    insert_event,
    insert_pending_delivery,
    make_endpoint,
)
from tests.support.stacks import Pipeline

ROOMY = 1000  # a pending limit no test reaches
POOL_SIZE = 8
LOCKS_HELD = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = ANY($1::int[])"


@pytest.fixture
async def tasks(
    test_env: dict[str, str], broker: tuple[RabbitBroker, Topology]
) -> AsyncIterator[Tasks]:
    connection = await aio_pika.connect(test_env["HOOKPOST_AMQP_URL"])
    async with connection:
        yield Tasks(await connection.channel(), broker[1].sender_queue.name)


@pytest.fixture
async def replicas(
    test_env: dict[str, str], broker: tuple[RabbitBroker, Topology]
) -> AsyncIterator[list[Replica]]:
    """Two dispatcher replicas (two pools) on one broker and database."""
    made: list[Replica] = []
    for _ in range(2):
        pool = await create_pool(
            test_env["HOOKPOST_DATABASE_URL"],
            min_size=POOL_SIZE,
            max_size=POOL_SIZE,
            reset_session=False,
        )
        statements = StatementLog()
        connections = [await pool.acquire() for _ in range(POOL_SIZE)]
        pids = [conn.get_server_pid() for conn in connections]
        for conn in connections:
            conn.add_query_logger(statements)
            await pool.release(conn)
        made.append(Replica(pool, statements, broker, pids))
    yield made
    for replica in made:
        for dispatcher in replica.dispatchers:
            await dispatcher.close()
        await replica.pool.close()


async def locks_left(db_pool: asyncpg.Pool, replica: Replica) -> int:
    """Advisory locks held by the replica's connections (other suites' dispatchers share
    the database)."""
    return await db_pool.fetchval(LOCKS_HELD, replica.pids)


async def handle_together(dispatcher: Dispatcher, events: Sequence[EventMessage]) -> list[Verdict]:
    """Messages in flight at the same moment (within one prefetch window)."""
    return list(await asyncio.gather(*(dispatcher.handle(e.to_bytes()) for e in events)))


async def dispatched_at(db_pool: asyncpg.Pool, event_id: str) -> Any:
    return await db_pool.fetchval("SELECT dispatched_at FROM events WHERE id = $1", event_id)


async def job_webhook(db_pool: asyncpg.Pool, organization_id: str, job_id: str) -> str:
    await db_pool.execute(
        "INSERT INTO mapping_jobs (id, organization_id) VALUES ($1, $2)", job_id, organization_id
    )
    hook = await make_endpoint(
        db_pool, organization_id, "http://127.0.0.1:9/job", ["mapping.completed"]
    )
    await db_pool.execute("UPDATE endpoints SET mapping_job_id = $1 WHERE id = $2", job_id, hook.id)
    return hook.id


async def test_a_batch_of_events_costs_one_statement_per_step(
    replicas: list[Replica], tasks: Tasks, db_pool: asyncpg.Pool, make_org
) -> None:
    [replica, _] = replicas
    dispatcher = replica.dispatcher()
    solo, fan, free, crowded = (
        await make_org(),
        await make_org(Plan.PRO),
        await make_org(),
        await make_org(),
    )
    url = "http://127.0.0.1:9/x"
    solo_hook = await make_endpoint(db_pool, solo.organizationId, url, ["mapping.completed"])
    fan_hooks = [
        await make_endpoint(db_pool, fan.organizationId, url, ["mapping.completed"])
        for _ in range(2)
    ]
    job_x, job_y = new_id(IdPrefix.MAPPING_JOB), new_id(IdPrefix.MAPPING_JOB)
    job_hook = await job_webhook(db_pool, fan.organizationId, job_x)
    await make_endpoint(
        db_pool, free.organizationId, url, ["mapping.completed", "mapping.error.resolved"]
    )
    crowded_hook = await make_endpoint(db_pool, crowded.organizationId, url, ["mapping.completed"])
    for _ in range(PENDING_LIMIT + 1):
        await insert_pending_delivery(db_pool, crowded.organizationId, crowded_hook.id)
    foreign = event_message(fan.organizationId)
    await insert_event(db_pool, foreign)  # its id is taken by another organization

    plain = [event_message(solo.organizationId) for _ in range(20)]
    for_job_x = event_message(fan.organizationId, data={"mappingJobId": job_x})
    for_job_y = event_message(fan.organizationId, data={"mappingJobId": job_y})
    unknown = event_message("org_does_not_exist")
    stolen = event_message(solo.organizationId)
    stolen = EventMessage(**{**stolen.model_dump(), "id": foreign.id})
    gated = event_message(free.organizationId, "mapping.error.resolved")  # PRO and up
    dropped = [event_message(crowded.organizationId) for _ in range(2)]
    target_delivery = new_id(IdPrefix.DELIVERY)
    targeted = event_message(  # a /test call: exempt from the crowded org's limit
        crowded.organizationId,
        "webhook.test",
        {"message": "test"},
        target_endpoint_id=crowded_hook.id,
        target_delivery_id=target_delivery,
    )
    batch = [
        *plain[:10],
        unknown,
        for_job_x,
        dropped[0],
        stolen,
        gated,
        for_job_y,
        targeted,
        dropped[1],
        *plain[10:],
    ]

    verdicts = await handle_together(dispatcher, batch)

    rejected = {batch.index(unknown), batch.index(stolen)}
    assert [i for i, v in enumerate(verdicts) if v is Verdict.REJECT] == sorted(rejected)
    assert all(v is Verdict.ACK for i, v in enumerate(verdicts) if i not in rejected)
    # One statement per step for the whole batch, whatever became of each event.
    assert replica.statements.steps() == Counter(prepare=1, deliveries=1, drop=1, finish=1)

    published = await tasks.take_all()
    by_event = Counter(task.event_id for task in published)
    assert by_event == Counter(
        {**{e.id: 1 for e in plain}, for_job_x.id: 3, for_job_y.id: 2, targeted.id: 1}
    )
    assert len({task.delivery_id for task in published}) == len(published)
    endpoints = {task.event_id: set() for task in published}
    for task in published:
        endpoints[task.event_id].add(task.endpoint_id)
    assert endpoints[for_job_x.id] == {fan_hooks[0].id, fan_hooks[1].id, job_hook}
    assert endpoints[for_job_y.id] == {fan_hooks[0].id, fan_hooks[1].id}
    assert all(endpoints[e.id] == {solo_hook.id} for e in plain)
    [test_task] = [task for task in published if task.event_id == targeted.id]
    assert (test_task.delivery_id, test_task.endpoint_id) == (target_delivery, crowded_hook.id)

    for event in [*plain, for_job_x, for_job_y, gated, targeted, *dropped]:
        assert await dispatched_at(db_pool, event.id) is not None, event
    assert await deliveries_of(db_pool, gated.id) == []
    for event in dropped:
        assert await deliveries_of(db_pool, event.id) == []
    assert await dispatched_at(db_pool, unknown.id) is None
    assert await dispatched_at(db_pool, foreign.id) is None  # the other org's event untouched
    details = await db_pool.fetchval(
        "SELECT details FROM audit_log WHERE organization_id = $1"
        " AND action = 'events.dropped.backpressure'",
        crowded.organizationId,
    )
    assert (details if isinstance(details, dict) else json.loads(details))["dropped"] == 2
    assert await locks_left(db_pool, replica) == 0

    # Redelivered, the same batch publishes nothing and counts no drop twice.
    replica.statements.clear()
    again = await handle_together(dispatcher, batch)
    assert again.count(Verdict.REJECT) == 2 and again.count(Verdict.ACK) == len(batch) - 2
    assert await tasks.take_all() == []
    assert replica.statements.steps() == Counter(prepare=1, unlock=1)  # all settled by prepare
    details = await db_pool.fetchval(
        "SELECT details FROM audit_log WHERE organization_id = $1", crowded.organizationId
    )
    assert (details if isinstance(details, dict) else json.loads(details))["dropped"] == 2


def slow(real: StepPublisher) -> Publisher:
    return SlowPublisher(real, 0.4)  # a batch holds its locks while its broker is slow


async def assert_one_set_of_tasks(
    tasks: Tasks, db_pool: asyncpg.Pool, events: list[EventMessage], per_event: int
) -> None:
    published = await tasks.take_all()
    assert Counter(task.event_id for task in published) == {e.id: per_event for e in events}
    assert len({task.delivery_id for task in published}) == len(published)
    for event in events:
        assert len(await deliveries_of(db_pool, event.id)) == per_event
        assert await dispatched_at(db_pool, event.id) is not None


async def twelve_events_for_two_endpoints(
    db_pool: asyncpg.Pool, make_org: Callable
) -> list[EventMessage]:
    org = await make_org(Plan.PRO)
    for _ in range(2):
        await make_endpoint(db_pool, org.organizationId, "http://127.0.0.1:9/x", ["export.ready"])
    return [event_message(org.organizationId, "export.ready", {"n": n}) for n in range(12)]


async def test_dispatching_an_event_the_api_has_not_marked_yet_marks_it_published(
    replicas: list[Replica], tasks: Tasks, db_pool: asyncpg.Pool, make_org
) -> None:
    """The api marks a confirmed event published after a short delay (publishing.py); an
    event dispatched first is marked published by the dispatch itself, on each of its three
    paths (tasks confirmed first, nothing to deliver, dropped), so the api's mark has no row
    left to write."""
    [replica, _] = replicas
    dispatcher = replica.dispatcher()
    url = "http://127.0.0.1:9/x"
    org, quiet, crowded = await make_org(), await make_org(), await make_org()
    await make_endpoint(db_pool, org.organizationId, url, ["mapping.completed"])
    crowded_hook = await make_endpoint(db_pool, crowded.organizationId, url, ["mapping.completed"])
    for _ in range(PENDING_LIMIT + 1):
        await insert_pending_delivery(db_pool, crowded.organizationId, crowded_hook.id)
    delivered = event_message(org.organizationId)
    nothing_to_deliver = event_message(quiet.organizationId)
    dropped = event_message(crowded.organizationId)
    batch = [delivered, nothing_to_deliver, dropped]
    for event in batch:
        await insert_event(db_pool, event)
    ids = [event.id for event in batch]
    await db_pool.execute("UPDATE events SET published_at = NULL WHERE id = ANY($1)", ids)

    assert await handle_together(dispatcher, batch) == [Verdict.ACK] * 3

    rows = await db_pool.fetch(
        "SELECT id, dispatched_at, published_at FROM events WHERE id = ANY($1)", ids
    )
    assert {row["id"] for row in rows} == set(ids)
    assert all(row["dispatched_at"] is not None for row in rows)
    assert [row["id"] for row in rows if row["published_at"] is None] == []
    assert [task.event_id for task in await tasks.take_all()] == [delivered.id]


async def test_twin_copies_in_one_prefetch_window_publish_one_set_of_tasks(
    replicas: list[Replica], tasks: Tasks, db_pool: asyncpg.Pool, make_org
) -> None:
    events = await twelve_events_for_two_endpoints(db_pool, make_org)
    [replica, _] = replicas

    verdicts = await handle_together(replica.dispatcher(slow, ROOMY), [*events, *events])

    assert verdicts == [Verdict.ACK] * len(events) * 2
    await assert_one_set_of_tasks(tasks, db_pool, events, per_event=2)
    # Never in one batch: each copy found its twin's lock taken and waited for it, alone.
    assert replica.statements.waiting_prepares() == len(events)
    assert await locks_left(db_pool, replica) == 0


async def test_a_copy_on_another_replica_waits_for_the_batch_dispatching_its_twin(
    replicas: list[Replica], tasks: Tasks, db_pool: asyncpg.Pool, make_org
) -> None:
    events = await twelve_events_for_two_endpoints(db_pool, make_org)
    first, second = replicas

    dispatching = asyncio.create_task(handle_together(first.dispatcher(slow, ROOMY), events))
    await eventually(lambda: locks_left(db_pool, first), lambda held: held == len(events))
    # The first replica's batch holds every lock while it publishes: the copies on the
    # second replica (one batch, in another order) must wait, then find nothing to publish.
    copies = await handle_together(second.dispatcher(pending_limit=ROOMY), events[::-1])

    assert dispatching.done(), "the copies returned before their twins were dispatched"
    assert await dispatching == [Verdict.ACK] * len(events)
    assert copies == [Verdict.ACK] * len(events)
    await assert_one_set_of_tasks(tasks, db_pool, events, per_event=2)
    assert second.statements.waiting_prepares() == len(events)
    assert await locks_left(db_pool, first) == 0 and await locks_left(db_pool, second) == 0


async def test_an_unconfirmed_publish_requeues_its_event_alone_and_the_redelivery_sends_the_rest(
    replicas: list[Replica],
    broker: tuple[RabbitBroker, Topology],
    tasks: Tasks,
    db_pool: asyncpg.Pool,
    make_org,
) -> None:
    org = await make_org(Plan.PRO)
    hooks = [
        await make_endpoint(db_pool, org.organizationId, "http://127.0.0.1:9/x", ["export.ready"])
        for _ in range(3)
    ]
    events = [event_message(org.organizationId, "export.ready", {"n": n}) for n in range(8)]
    failing = events[3]
    [replica, _] = replicas
    flaky = replica.dispatcher(lambda real: FlakyPublisher(real, failing.id), ROOMY)

    verdicts = await handle_together(flaky, events)

    assert verdicts == [Verdict.ACK] * 3 + [Verdict.REQUEUE] + [Verdict.ACK] * 4
    assert replica.statements.steps() == Counter(prepare=1, deliveries=1, finish=1)
    published = await tasks.take_all()
    others = [e for e in events if e is not failing]
    assert Counter(t.event_id for t in published) == {
        **{e.id: len(hooks) for e in others},
        failing.id: len(hooks) - 1,  # its last task was never confirmed
    }
    for event in others:
        assert await dispatched_at(db_pool, event.id) is not None
    assert await dispatched_at(db_pool, failing.id) is None
    interrupted = await deliveries_of(db_pool, failing.id)
    assert len(interrupted) == len(hooks)
    assert all(d["status"] == "PENDING" and d["attempt_count"] == 0 for d in interrupted)
    # Meanwhile a sender took the first of its tasks that did go out.
    [sent_first, *_] = [t for t in published if t.event_id == failing.id]
    await db_pool.execute(
        "UPDATE deliveries SET attempt_count = 1 WHERE id = $1", sent_first.delivery_id
    )
    assert await locks_left(db_pool, replica) == 0

    # The redelivery (the broker works again) publishes what was not sent, and nothing else.
    assert await replica.dispatcher(pending_limit=ROOMY).handle(failing.to_bytes()) is Verdict.ACK
    resent = await tasks.take_all()
    assert sorted(t.delivery_id for t in resent) == sorted(
        d["id"] for d in interrupted if d["id"] != sent_first.delivery_id
    )
    assert await dispatched_at(db_pool, failing.id) is not None
    assert len(await deliveries_of(db_pool, failing.id)) == len(hooks)


async def test_one_events_bad_data_requeues_it_alone(
    replicas: list[Replica], tasks: Tasks, db_pool: asyncpg.Pool, make_org
) -> None:
    # Postgres refuses a NUL character in jsonb: the batch's shared prepare fails on it.
    org = await make_org()
    await make_endpoint(db_pool, org.organizationId, "http://127.0.0.1:9/x", ["mapping.completed"])
    events = [event_message(org.organizationId) for _ in range(5)]
    poison = event_message(org.organizationId, data={"text": "nul \u0000 here"})
    [replica, _] = replicas

    dispatcher = replica.dispatcher(pending_limit=ROOMY)
    verdicts = await handle_together(dispatcher, [*events[:2], poison, *events[2:]])

    assert verdicts == [Verdict.ACK] * 2 + [Verdict.REQUEUE] + [Verdict.ACK] * 3
    assert Counter(t.event_id for t in await tasks.take_all()) == {e.id: 1 for e in events}
    assert await dispatched_at(db_pool, poison.id) is None
    assert await locks_left(db_pool, replica) == 0


@pytest.mark.e2e
async def test_two_dispatcher_processes_given_every_event_twice_publish_one_set(
    test_env: dict[str, str], db_pool: asyncpg.Pool, make_org
) -> None:
    org = await make_org()
    await make_endpoint(db_pool, org.organizationId, "http://127.0.0.1:9/x", ["mapping.completed"])
    async with Pipeline(test_env, "twins") as pipe:
        # Their tasks are counted in the sender queue, so no first attempt is made here.
        await pipe.stack.add_dispatcher(**NO_FIRST_ATTEMPTS_HERE)
        await pipe.stack.add_dispatcher(**NO_FIRST_ATTEMPTS_HERE)
        events = [event_message(org.organizationId) for _ in range(40)]
        for event in events:
            await pipe.publish(event)
            await pipe.publish(event)
        for event in events:
            await eventually(lambda e=event: dispatched_at(db_pool, e.id), lambda v: v is not None)
        sender_queue = pipe.topology.sender_queue.name
        await eventually(
            lambda: pipe.queue_depth(pipe.topology.dispatcher_queue.name), lambda n: n == 0
        )
        await asyncio.sleep(0.5)
        assert await pipe.queue_depth(sender_queue) == len(events)
        for event in events:
            assert len(await deliveries_of(db_pool, event.id)) == 1


async def test_a_republished_step_carries_its_attempt_and_schedule_in_the_headers(
    test_env: dict[str, str], broker: tuple[RabbitBroker, Topology]
) -> None:
    """A recovered delivery (handler.py, RECOVERED) must reach the sender at the attempt it
    was at: the sender then redoes only what follows an attempt already recorded."""
    real_broker, topology = broker
    task = DeliveryTask(
        delivery_id=new_id(IdPrefix.DELIVERY),
        event_id=new_id(IdPrefix.EVENT),
        endpoint_id="dest_1",
        organization_id="org_1",
        type="mapping.completed",
        event_created_at="2026-11-22T12:00:00Z",
        data={},
    )
    await StepPublisher(real_broker, topology, EngineMetrics("dispatcher")).publish_steps(
        [DeliveryStep(task, 3, 2)]
    )
    connection = await aio_pika.connect(test_env["HOOKPOST_AMQP_URL"])
    async with connection:
        queue = await (await connection.channel()).get_queue(topology.sender_queue.name)
        message = await eventually(lambda: queue.get(no_ack=True, fail=False), bool)
    assert message.headers[ATTEMPT_HEADER] == 3
    assert message.headers[SCHEDULE_START_HEADER] == 2
    assert DeliveryTask.model_validate_json(message.body) == task
