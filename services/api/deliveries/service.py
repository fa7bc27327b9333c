"""Delivery history for the front doors, and the manual retry of a DEAD delivery."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from libs.domain.endpoint_kinds import DeliveryStatus
from libs.infra.broker.topology import Topology
from libs.infra.settings import Settings
from services.api.audit import service as audit
from services.api.broker import BrokerLink, BrokerUnavailable
from services.api.deliveries import reopening, repository
from services.api.errors import ConflictError, NotFoundError, ServiceUnavailableError
from services.api.metrics import PUBLISH_FAILURES

RETRYABLE = (DeliveryStatus.DEAD.value, DeliveryStatus.FAILED.value)


async def list_for_endpoint(
    pool: asyncpg.Pool, org_id: str, endpoint_id: str, limit: int
) -> list[tuple[asyncpg.Record, list[asyncpg.Record]]]:
    """Newest deliveries first, each with its attempts in order."""
    deliveries = await repository.list_for_endpoint(pool, org_id, endpoint_id, limit)
    attempts: dict[str, list[asyncpg.Record]] = defaultdict(list)
    if deliveries:
        for attempt in await repository.attempts_for(pool, [d["id"] for d in deliveries]):
            attempts[attempt["delivery_id"]].append(attempt)
    return [(d, attempts[d["id"]]) for d in deliveries]


async def retry_delivery(
    pool: asyncpg.Pool,
    broker: BrokerLink,
    topology: Topology,
    settings: Settings,
    org_id: str,
    delivery_id: str,
) -> None:
    """Re-send a DEAD/FAILED delivery (same eventId) with a fresh retry schedule; one of
    an ordered line waits for its line's head to end first (reopening.py).

    The status change commits only when the broker confirmed the task: a task that never
    left must not leave the delivery PENDING forever.
    """
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await repository.lock_for_retry(conn, org_id, delivery_id)
            if row is None:
                raise NotFoundError(f"delivery {delivery_id!r} not found")
            if row["status"] not in RETRYABLE:
                raise ConflictError(
                    f"only DEAD or FAILED deliveries can be retried; this one is {row['status']}",
                    status=row["status"],
                )
            await audit.record(
                conn, org_id, audit.AuditAction.DELIVERY_RETRIED, {"deliveryId": delivery_id}
            )
            try:
                released = await reopening.reopen(
                    conn, broker, topology, settings.payload_cap_bytes, [row]
                )
            except BrokerUnavailable as exc:
                PUBLISH_FAILURES.labels(what="delivery").inc()
                # Raising inside the transaction rolls the status change back.
                raise ServiceUnavailableError(
                    "the message broker is unavailable; the delivery was not retried, try again"
                ) from exc
        await reopening.publish_released(broker, topology, released)


@dataclass(frozen=True)
class LogFilter:
    """What the dashboard's delivery log is narrowed to (every field optional)."""

    endpoint_id: str | None = None
    status: str | None = None
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def log_page(
    pool: asyncpg.Pool,
    org_id: str,
    where: LogFilter,
    *,
    before: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> list[asyncpg.Record]:
    """One page of the org's deliveries, newest first (keyset: `before` a row)."""
    return await repository.log_page(
        pool,
        org_id,
        endpoint_id=where.endpoint_id,
        status=where.status,
        event_type=where.event_type,
        since=where.since,
        until=where.until,
        before=before,
        limit=limit,
    )


async def delivery_with_attempts(
    pool: asyncpg.Pool, org_id: str, delivery_id: str
) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
    """A delivery of this org with every attempt (response excerpts included); 404 else."""
    row = await repository.delivery_detail(pool, org_id, delivery_id)
    if row is None:
        raise NotFoundError(f"delivery {delivery_id!r} not found")
    return row, await repository.attempts_with_responses(pool, delivery_id, row["event_id"])


async def hourly_outcomes(
    pool: asyncpg.Pool, org_id: str, endpoint_id: str, since: datetime
) -> list[asyncpg.Record]:
    return await repository.hourly_outcomes(pool, org_id, endpoint_id, since)
