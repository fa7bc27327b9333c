"""The sender's attempt record on the real database: two copies of one delivery task.

A dispatcher redelivered after a PostgreSQL restart republishes a first attempt that is
already in flight, so two senders can POST the same attempt at once. Whichever records
second must not rewrite the history of a delivery the first one ended (found by make chaos).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from libs.delivery.repository import AttemptRecord, DeliveryRepository
from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.ids import IdPrefix, new_id
from libs.domain.plans import Plan
from libs.infra.broker.messages import DeliveryTask
from tests.support.factories import (
    attempts_of,
    event_message,
    insert_event,
    insert_pending_delivery,
    make_endpoint,
    task_of,
)


def attempt(task: DeliveryTask, number: int, *, ok: bool) -> AttemptRecord:
    now = datetime.now(UTC)
    return AttemptRecord(
        attempt_id=new_id(IdPrefix.DELIVERY),
        delivery_id=task.delivery_id,
        event_id=task.event_id,
        attempt_number=number,
        attempted_at=now,
        duration_ms=7,
        http_status=200 if ok else 500,
        error=None if ok else "HTTP 500",
        response_excerpt="ok" if ok else "boom",
        succeeded=ok,
        new_status="SUCCEEDED" if ok else "PENDING",
        next_attempt_at=None if ok else now + timedelta(seconds=1),
    )


@pytest.fixture
def repository(db_pool: asyncpg.Pool) -> DeliveryRepository:
    return DeliveryRepository(db_pool)


@pytest.fixture
async def task(db_pool: asyncpg.Pool, make_org: Callable) -> DeliveryTask:
    """A PENDING delivery of a new org's endpoint, as its task."""
    org = await make_org(Plan.PRO)
    endpoint = await make_endpoint(
        db_pool, org.organizationId, "http://127.0.0.1:9/hook", ["mapping.completed"]
    )
    return await task_of(
        db_pool, await insert_pending_delivery(db_pool, org.organizationId, endpoint.id)
    )


async def test_a_late_failed_copy_does_not_rewrite_a_succeeded_delivery(
    db_pool: asyncpg.Pool, task: DeliveryTask, repository: DeliveryRepository
) -> None:
    assert await repository.record(attempt(task, 1, ok=True)) == "SUCCEEDED"
    assert await repository.record(attempt(task, 1, ok=False)) is None  # too late
    assert await repository.record(attempt(task, 2, ok=False)) is None  # stale next

    rows = await attempts_of(db_pool, task.delivery_id)
    assert [(r["attempt_number"], r["succeeded"], r["http_status"]) for r in rows] == [
        (1, True, 200)
    ]
    delivery = await db_pool.fetchrow("SELECT * FROM deliveries WHERE id = $1", task.delivery_id)
    assert (delivery["status"], delivery["attempt_count"]) == ("SUCCEEDED", 1)


async def test_while_pending_a_repeated_attempt_overwrites_its_own_row(
    db_pool: asyncpg.Pool, task: DeliveryTask, repository: DeliveryRepository
) -> None:
    assert await repository.record(attempt(task, 1, ok=False)) == "PENDING"
    assert await repository.record(attempt(task, 1, ok=True)) == "SUCCEEDED"

    rows = await attempts_of(db_pool, task.delivery_id)
    assert [(r["attempt_number"], r["succeeded"]) for r in rows] == [(1, True)]


async def test_a_deleted_delivery_records_nothing(
    db_pool: asyncpg.Pool, task: DeliveryTask, repository: DeliveryRepository
) -> None:
    await db_pool.execute("DELETE FROM deliveries WHERE id = $1", task.delivery_id)
    assert await repository.record(attempt(task, 1, ok=True)) is None
    assert await attempts_of(db_pool, task.delivery_id) == []


async def test_a_just_created_row_is_what_loading_it_would_read(
    db_pool: asyncpg.Pool, make_org: Callable, repository: DeliveryRepository
) -> None:
    # The dispatcher's first attempts take `new_rows` instead of reading them back:
    # for a destination and for an agent sink (with the job it pushes), the row must be
    # the one a sender's `load` reads for the same new delivery.
    org = await make_org(Plan.PRO_MAX)
    agent_id, job_id = new_id(IdPrefix.AGENT), new_id(IdPrefix.MAPPING_JOB)
    await db_pool.execute(
        "INSERT INTO agents (id, organization_id, name, workspace_id) VALUES ($1, $2, 'a', 'ws_1')",
        agent_id,
        org.organizationId,
    )
    await db_pool.execute(
        "INSERT INTO mapping_jobs (id, organization_id, agent_id, status, stats, results,"
        " completed_at) VALUES ($1, $2, $3, 'COMPLETED', $4, $5, now())",
        job_id,
        org.organizationId,
        agent_id,
        {"rows": 2},
        [{"b": 1, "a": 2}],
    )
    destination = await make_endpoint(
        db_pool, org.organizationId, "http://127.0.0.1:9/hook", ["mapping.completed"]
    )
    sink = await make_endpoint(
        db_pool,
        org.organizationId,
        "http://127.0.0.1:9/sink",
        ["mapping.completed"],
        kind=EndpointKind.AGENT_SINK,
        agent_id=agent_id,
    )
    event = event_message(org.organizationId, data={"mappingJobId": job_id})
    await insert_event(db_pool, event)
    tasks = []
    for endpoint_id in (destination.id, sink.id):
        delivery_id = new_id(IdPrefix.DELIVERY)
        await db_pool.execute(
            "INSERT INTO deliveries (id, event_id, endpoint_id, organization_id)"
            " VALUES ($1, $2, $3, $4)",
            delivery_id,
            event.id,
            endpoint_id,
            org.organizationId,
        )
        tasks.append(
            DeliveryTask(
                delivery_id=delivery_id,
                event_id=event.id,
                endpoint_id=endpoint_id,
                organization_id=org.organizationId,
                type=event.type,
                event_created_at=event.created_at,
                data=event.data,
            )
        )
    created = await repository.new_rows(tasks)
    loaded = [await repository.load(task, 1) for task in tasks]

    # A new row is due when inserted: the created rows carry a moment at or just after it,
    # so that an attempt deferred briefly (engine.py `_defer`) needs no statement to move it.
    assert [row and replace(row, next_attempt_at=None) for row in created] == [
        row and replace(row, next_attempt_at=None) for row in loaded
    ]
    for made, read in zip(created, loaded, strict=True):
        assert made is not None and read is not None and read.next_attempt_at is not None
        assert made.next_attempt_at is not None
        assert timedelta(0) <= made.next_attempt_at - read.next_attempt_at < timedelta(seconds=5)
    assert created[1] is not None and created[1].job_id == job_id  # the sink's job came along


async def test_a_created_row_whose_endpoint_is_gone_is_none(
    db_pool: asyncpg.Pool, task: DeliveryTask, repository: DeliveryRepository
) -> None:
    await db_pool.execute("DELETE FROM endpoints WHERE id = $1", task.endpoint_id)
    assert await repository.new_rows([task]) == [None]
