"""Test-only rows: endpoints, events and deliveries inserted straight into Postgres.

The API normally creates these; pipeline tests insert them directly (which is also how a
test gets an endpoint the API would refuse, e.g. a loopback URL in prod mode).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

# Re-exported: the sample rows and tasks live in the harness, which benchmarks share.
from harness.samples import UNIT_TIME as UNIT_TIME
from harness.samples import delivery_task as delivery_task
from harness.samples import endpoint_settings as endpoint_settings
from harness.samples import sender_delivery_row as sender_delivery_row
from harness.waiting import eventually
from libs.domain.endpoint_kinds import EndpointKind, EndpointStatus
from libs.domain.ids import IdPrefix, new_id
from libs.domain.masking import mask_url
from libs.domain.secrets import generate_signing_secret, mask_secret
from libs.infra.broker.messages import DeliveryTask, EventMessage
from libs.infra.crypto import encrypt, encrypt_optional

# A report job's request as seed 004 writes it (POST /api/v1/reports/jobs), without a webhook.
REPORT_JOB_REQUEST: dict[str, Any] = {
    "url": "https://example.com/call.mp3",
    "output": {"template": "sales_playbook"},
    "target": {"strategy": "dominant"},
}


@dataclass(frozen=True)
class EndpointRow:
    id: str
    organization_id: str
    url: str
    secret: str
    events: list[str] = field(default_factory=list)


async def make_endpoint(
    pool: asyncpg.Pool,
    organization_id: str,
    url: str,
    events: Sequence[str] = ("mapping.completed",),
    *,
    kind: EndpointKind = EndpointKind.DESTINATION,
    status: EndpointStatus = EndpointStatus.ACTIVE,
    secret: str | None = None,
    previous_secret: str | None = None,
    previous_secret_expires_at: datetime | None = None,
    api_key_name: str | None = None,
    api_key_value: str | None = None,
    additional_headers: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
    agent_id: str | None = None,  # an agent sink's agent
) -> EndpointRow:
    prefix = IdPrefix.DESTINATION if kind is EndpointKind.DESTINATION else IdPrefix.SUBSCRIPTION
    endpoint_id = new_id(prefix)
    secret = secret or generate_signing_secret()
    await pool.execute(
        """
        INSERT INTO endpoints (id, organization_id, kind, name, url_enc, url_masked, events,
                               status, secret_enc, secret_masked, previous_secret_enc,
                               previous_secret_expires_at, api_key_name, api_key_value_enc,
                               additional_headers, config, agent_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
        """,
        endpoint_id,
        organization_id,
        kind.value,
        f"test {endpoint_id}",
        encrypt(url),
        mask_url(url),  # what the api stores
        list(events),
        status.value,
        encrypt(secret),
        mask_secret(secret),
        encrypt_optional(previous_secret),
        previous_secret_expires_at,
        api_key_name,
        encrypt_optional(api_key_value),
        additional_headers or {},
        config or {},
        agent_id,
    )
    return EndpointRow(endpoint_id, organization_id, url, secret, list(events))


def event_message(
    organization_id: str,
    event_type: str = "mapping.completed",
    data: dict[str, Any] | None = None,
    *,
    target_endpoint_id: str | None = None,
    target_delivery_id: str | None = None,
) -> EventMessage:
    return EventMessage(
        id=new_id(IdPrefix.EVENT),
        organization_id=organization_id,
        type=event_type,
        data=data if data is not None else {"mappingJobId": "job_1", "rowCount": 3},
        created_at=datetime.now(UTC),
        target_endpoint_id=target_endpoint_id,
        target_delivery_id=target_delivery_id,
    )


async def event_to(make_org: Callable, pool: asyncpg.Pool, url: str) -> EventMessage:
    """An event of a new org whose one endpoint, at `url`, subscribes to its type."""
    org = await make_org()
    await make_endpoint(pool, org.organizationId, url)
    return event_message(org.organizationId)


async def insert_event(pool: asyncpg.Pool, event: EventMessage) -> None:
    """The row the API writes before publishing (the dispatcher upserts it otherwise)."""
    await pool.execute(
        """
        INSERT INTO events (id, organization_id, type, data, target_endpoint_id,
                            target_delivery_id, created_at, published_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, now())
        """,
        event.id,
        event.organization_id,
        event.type,
        event.data,
        event.target_endpoint_id,
        event.target_delivery_id,
        event.created_at,
    )


async def insert_pending_delivery(
    pool: asyncpg.Pool,
    organization_id: str,
    endpoint_id: str,
    *,
    status: str = "PENDING",
    ordering_key: str | None = None,
) -> str:
    """A PENDING delivery (of a fresh, already dispatched event) that no queue holds; or,
    with `status`, one still to be sent that is not PENDING (HELD, with an `ordering_key`)
    or one that is kept unsent (PARKED)."""
    event = event_message(organization_id)
    await insert_event(pool, event)
    delivery_id = new_id(IdPrefix.DELIVERY)
    await pool.execute(
        "INSERT INTO deliveries (id, event_id, endpoint_id, organization_id, status,"
        " ordering_key) VALUES ($1, $2, $3, $4, $5, $6)",
        delivery_id,
        event.id,
        endpoint_id,
        organization_id,
        status,
        ordering_key,
    )
    return delivery_id


async def task_of(pool: asyncpg.Pool, delivery_id: str) -> DeliveryTask:
    """The task of a stored delivery, as the engine receives it."""
    row = await pool.fetchrow(
        "SELECT d.id, d.event_id, d.endpoint_id, d.organization_id, e.type, e.data,"
        " e.created_at AS event_created_at"
        " FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.id = $1",
        delivery_id,
    )
    assert row is not None, f"no delivery {delivery_id}"
    return DeliveryTask.from_row(row, 64 * 1024)


async def deliveries_of(pool: asyncpg.Pool, event_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM deliveries WHERE event_id = $1 ORDER BY endpoint_id", event_id
    )


def succeeded(rows: Sequence[asyncpg.Record]) -> bool:
    """There are deliveries, and every one SUCCEEDED (a `deliveries_when` condition)."""
    return bool(rows) and all(r["status"] == "SUCCEEDED" for r in rows)


async def deliveries_when(
    pool: asyncpg.Pool,
    event_id: str,
    done: Callable[[list[asyncpg.Record]], bool],
    timeout: float = 20.0,
) -> list[asyncpg.Record]:
    """The event's deliveries, once `done(rows)` holds (an AssertionError after `timeout`)."""
    return await eventually(lambda: deliveries_of(pool, event_id), done, timeout)


async def delivered(pool: asyncpg.Pool, event_id: str, count: int = 1) -> list[asyncpg.Record]:
    """The event's deliveries once `count` of them exist and none is PENDING any more."""
    return await deliveries_when(
        pool,
        event_id,
        lambda rows: len(rows) >= count and all(r["status"] != "PENDING" for r in rows),
    )


async def dispatched(pool: asyncpg.Pool, event_id: str) -> None:
    """Wait until the dispatcher marked the event dispatched."""
    await eventually(
        lambda: pool.fetchval("SELECT dispatched_at FROM events WHERE id = $1", event_id),
        lambda value: value is not None,
    )


async def attempts_of(pool: asyncpg.Pool, delivery_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt_number",
        delivery_id,
    )


# A mapping job's results as an agent sink delivers them: one row matched, one not.
MAPPING_RESULTS: list[dict[str, Any]] = [
    {
        "partnerRowId": "row_1",
        "referenceHotelId": "ref_1",
        "matchMethod": "STANDARD",
        "matchConfidence": None,
    },
    {
        "partnerRowId": "row_2",
        "referenceHotelId": None,
        "matchMethod": None,
        "matchConfidence": None,
    },
]
