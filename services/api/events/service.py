"""Event ingest (POST /events) and the outbox write every event takes.

An event is committed to PostgreSQL before the API answers, then published with confirms;
when the publish fails the answer is still 202 and the outbox relay publishes it later.
"""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg
import orjson

from libs.common import telemetry
from libs.common.broker.topology import Topology
from libs.common.event_types import CATALOGUE, EventType
from libs.common.ids import IdPrefix, new_id
from services.api.broker import BrokerLink
from services.api.errors import BadRequestError, ConflictError, NotFoundError
from services.api.events import repository
from services.api.events.publishing import publish_now
from services.api.metrics import EVENTS_ACCEPTED

MAX_IDEMPOTENCY_KEY_LENGTH = 255


def parse_ingest_type(name: str) -> EventType:
    """A wire name a producer may send: known, and not the synthetic webhook.test."""
    try:
        event_type = EventType(name)
    except ValueError as exc:
        known = ", ".join(t.value for t in EventType if CATALOGUE[t].subscribable)
        raise BadRequestError(f"unknown event type {name!r} (known: {known})") from exc
    if not CATALOGUE[event_type].subscribable:
        raise BadRequestError(f"{name} events are only created by a /test call")
    return event_type


def _serialized(data: dict[str, Any]) -> bytes:
    try:
        body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:  # e.g. integers beyond 64 bits, lone surrogates
        raise BadRequestError(f"data cannot be stored: {exc}") from exc
    if b"\\u0000" in body:  # jsonb cannot hold NUL characters
        raise BadRequestError("data cannot be stored: it contains NUL characters")
    return body


def _fingerprint(event_type: str, data: dict[str, Any]) -> str:
    return hashlib.sha256(event_type.encode() + b"\n" + _serialized(data)).hexdigest()


async def record_and_publish(
    pool: asyncpg.Pool,
    broker: BrokerLink,
    topology: Topology,
    org_id: str,
    event_type: EventType,
    data: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    target_endpoint_id: str | None = None,
    target_delivery_id: str | None = None,
) -> str:
    """Store the event (the outbox), then publish it; return the event id.

    With an idempotency key, a repeat of the same request returns the first event's id and
    a different request under the same key is a 409.
    """
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise BadRequestError(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
        )
    fingerprint = _fingerprint(event_type.value, data)
    record = await repository.insert_event(
        pool,
        new_id(IdPrefix.EVENT),
        org_id,
        event_type.value,
        data,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint if idempotency_key is not None else None,
        target_endpoint_id=target_endpoint_id,
        target_delivery_id=target_delivery_id,
        # The accepting request's context: the relay, if it publishes, continues this trace.
        trace_context=telemetry.trace_headers() or None,
    )
    if record is None:
        assert idempotency_key is not None  # only a key can conflict
        existing = await repository.get_by_idempotency_key(pool, org_id, idempotency_key)
        if existing is None:  # pragma: no cover - the conflicting row cannot vanish
            raise ConflictError("Idempotency-Key is in use by a concurrent request")
        if existing["idempotency_fingerprint"] != fingerprint:
            raise ConflictError(
                "Idempotency-Key was already used with a different request body",
                eventId=existing["id"],
            )
        # Published already, or the relay will: a repeat never publishes twice on purpose.
        return str(existing["id"])
    EVENTS_ACCEPTED.labels(type=event_type.value).inc()
    telemetry.annotate(event_id=record["id"], organization_id=org_id)
    await publish_now(pool, broker, topology, record)
    return str(record["id"])


def check_storable(data: dict[str, Any]) -> None:
    """Raise a 400 for data jsonb cannot hold (what every stored payload must pass)."""
    _serialized(data)


async def record_in_transaction(
    conn: asyncpg.Connection, org_id: str, event_type: EventType, data: dict[str, Any]
) -> asyncpg.Record:
    """Write an outbox event inside the caller's transaction (with the state change it
    reports): it exists exactly when that change committed. Publish it after the commit with
    publish_recorded; if that publish fails, the outbox relay publishes it later.
    """
    check_storable(data)
    record = await repository.insert_event(
        conn,
        new_id(IdPrefix.EVENT),
        org_id,
        event_type.value,
        data,
        # As in record_and_publish: a relayed publish continues the request's trace.
        trace_context=telemetry.trace_headers() or None,
    )
    assert record is not None  # no idempotency key: nothing can conflict
    return record


async def publish_recorded(
    pool: asyncpg.Pool, broker: BrokerLink, topology: Topology, records: list[asyncpg.Record]
) -> None:
    """Publish events record_in_transaction wrote, once their transaction has committed."""
    for record in records:
        EVENTS_ACCEPTED.labels(type=record["type"]).inc()
        telemetry.annotate(organization_id=record["organization_id"])
        await publish_now(pool, broker, topology, record)


async def get_event(pool: asyncpg.Pool, org_id: str, event_id: str) -> asyncpg.Record:
    record = await repository.get_event(pool, org_id, event_id)
    if record is None:
        raise NotFoundError(f"event {event_id!r} not found")
    return record
