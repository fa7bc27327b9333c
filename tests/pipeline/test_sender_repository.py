"""The sender's attempt record on the real database: two copies of one delivery task.

A dispatcher redelivered after a PostgreSQL restart republishes a first attempt that is
already in flight, so two senders can POST the same attempt at once. Whichever records
second must not rewrite the history of a delivery the first one ended (found by make chaos).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from libs.common.ids import IdPrefix, new_id
from libs.common.plans import Plan
from services.sender.repository import AttemptRecord, SenderRepository
from tests.support.factories import attempts_of, insert_pending_delivery, make_endpoint


def attempt(delivery_id: str, number: int, *, ok: bool) -> AttemptRecord:
    now = datetime.now(UTC)
    return AttemptRecord(
        attempt_id=new_id(IdPrefix.DELIVERY),
        delivery_id=delivery_id,
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


async def new_delivery(db_pool: asyncpg.Pool, make_org: Callable) -> str:
    org = await make_org(Plan.PRO)
    endpoint = await make_endpoint(
        db_pool, org.organizationId, "http://127.0.0.1:9/hook", ["mapping.completed"]
    )
    return await insert_pending_delivery(db_pool, org.organizationId, endpoint.id)


async def test_a_late_failed_copy_does_not_rewrite_a_succeeded_delivery(
    db_pool: asyncpg.Pool, make_org: Callable
) -> None:
    delivery_id = await new_delivery(db_pool, make_org)
    repository = SenderRepository(db_pool)

    assert await repository.record(attempt(delivery_id, 1, ok=True)) == "SUCCEEDED"
    assert await repository.record(attempt(delivery_id, 1, ok=False)) is None  # too late
    assert await repository.record(attempt(delivery_id, 2, ok=False)) is None  # stale next

    rows = await attempts_of(db_pool, delivery_id)
    assert [(r["attempt_number"], r["succeeded"], r["http_status"]) for r in rows] == [
        (1, True, 200)
    ]
    delivery = await db_pool.fetchrow("SELECT * FROM deliveries WHERE id = $1", delivery_id)
    assert (delivery["status"], delivery["attempt_count"]) == ("SUCCEEDED", 1)


async def test_while_pending_a_repeated_attempt_overwrites_its_own_row(
    db_pool: asyncpg.Pool, make_org: Callable
) -> None:
    delivery_id = await new_delivery(db_pool, make_org)
    repository = SenderRepository(db_pool)

    assert await repository.record(attempt(delivery_id, 1, ok=False)) == "PENDING"
    assert await repository.record(attempt(delivery_id, 1, ok=True)) == "SUCCEEDED"

    rows = await attempts_of(db_pool, delivery_id)
    assert [(r["attempt_number"], r["succeeded"]) for r in rows] == [(1, True)]


async def test_a_deleted_delivery_records_nothing(
    db_pool: asyncpg.Pool, make_org: Callable
) -> None:
    delivery_id = await new_delivery(db_pool, make_org)
    await db_pool.execute("DELETE FROM deliveries WHERE id = $1", delivery_id)
    assert await SenderRepository(db_pool).record(attempt(delivery_id, 1, ok=True)) is None
    assert await attempts_of(db_pool, delivery_id) == []
