"""Event ingest (POST /events) and the outbox write every event takes.

An event is committed to PostgreSQL before the API answers, then published with confirms;
when the publish fails the answer is still 202 and the outbox relay publishes it later.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from libs.domain.event_types import CATALOGUE, EventType
from libs.domain.ids import IdPrefix, new_id
from libs.infra import telemetry
from libs.infra.broker.messages import EventMessage
from libs.infra.broker.topology import Topology
from services.api.broker import BrokerLink
from services.api.errors import BadRequestError, ConflictError, NotFoundError, UnauthorizedError
from services.api.events import repository
from services.api.events.publishing import (
    EventPublishes,
    PublishedMarks,
    publish_now,
    to_message,
)
from services.api.metrics import EVENTS_ACCEPTED

MAX_IDEMPOTENCY_KEY_LENGTH = 255
CHAOS_HOLD_S = 120.0  # the harness kills the api well within it

log = logging.getLogger("hookpost.api.events")


@dataclass
class EventOutbox:
    """What putting an event on its way takes: the database and the broker, the batched
    inserts of accepted events, and the published marks written in the background."""

    pool: asyncpg.Pool
    broker: BrokerLink
    topology: Topology
    relay_grace_s: float
    hold_key: str | None = None  # chaos runs only: see Settings.chaos_hold_publish_key
    inserts: repository.EventInserts = field(init=False)
    marks: PublishedMarks = field(init=False)
    publishes: EventPublishes = field(init=False)

    def __post_init__(self) -> None:
        self.inserts = repository.EventInserts(self.pool)
        self.marks = PublishedMarks(self.pool, self.relay_grace_s)
        self.publishes = EventPublishes(self.broker, self.topology, self.marks)

    async def close(self) -> None:
        """Finish what is collected (after the last request, before the pool closes)."""
        await self.inserts.close()
        await self.publishes.close()  # before the marks: a confirmed publish adds marks
        await self.marks.close()


def _ingestible(event_type: EventType) -> bool:
    """What a producer may send: neither made by a /test call or a report job (not
    subscribable) nor by hookpost itself (not producible)."""
    info = CATALOGUE[event_type]
    return info.subscribable and info.producible


def parse_ingest_type(name: str) -> EventType:
    """A wire name a producer may send: known, and not one hookpost makes itself."""
    try:
        event_type = EventType(name)
    except ValueError as exc:
        known = ", ".join(t.value for t in EventType if _ingestible(t))
        raise BadRequestError(f"unknown event type {name!r} (known: {known})") from exc
    if not CATALOGUE[event_type].subscribable:
        source = "a /test call" if event_type is EventType.WEBHOOK_TEST else "a report job"
        raise BadRequestError(f"{name} events are only created by {source}")
    if not CATALOGUE[event_type].producible:
        raise BadRequestError(f"{name} events are only created by hookpost itself")
    return event_type


async def ingest(
    outbox: EventOutbox,
    org_id: str,
    type_name: str,
    data: dict[str, Any],
    idempotency_key: str | None,
    ordering_key: str | None = None,
) -> str:
    """POST /events once its token, body and rate limit have passed; return the event id.

    Called by the ingest route (events/ingest.py). The current span is the request's SERVER
    span, which starts the event's trace or continues the caller's.
    """
    telemetry.annotate(organization_id=org_id)
    event_type = parse_ingest_type(type_name)
    event = check_event(
        org_id, event_type, data, idempotency_key=idempotency_key, ordering_key=ordering_key
    )
    return await record_and_publish(outbox, event)


def _serialized(data: dict[str, Any]) -> bytes:
    try:
        body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:  # e.g. integers beyond 64 bits, lone surrogates
        raise BadRequestError(f"data cannot be stored: {exc}") from exc
    if b"\\u0000" in body:  # jsonb cannot hold NUL characters
        raise BadRequestError("data cannot be stored: it contains NUL characters")
    return body


def _fingerprint(event_type: str, serialized_data: bytes, ordering_key: str | None) -> str:
    # The ordering key is part of the request (only when there is one, so the fingerprints
    # of requests without one are what they always were).
    text = event_type.encode() + b"\n" + serialized_data
    if ordering_key is not None:
        text += b"\n" + ordering_key.encode()
    return hashlib.sha256(text).hexdigest()


@dataclass(frozen=True, slots=True)
class CheckedEvent:
    """An event that passed every check of ingest, ready for its INSERT and its message."""

    row: repository.NewEvent
    data: dict[str, Any]

    def message(self, created_at: datetime) -> EventMessage:
        fields = {name: getattr(self.row, name) for name in _MESSAGE_FIELDS}
        return EventMessage(**fields, data=self.data, created_at=created_at)


# What a stored event's message takes from its row (all but its data and created_at).
_MESSAGE_FIELDS = tuple(
    name
    for name in EventMessage.model_fields
    if name in {field.name for field in dataclasses.fields(repository.NewEvent)}
)


def check_event(
    org_id: str,
    event_type: EventType,
    data: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    target_endpoint_id: str | None = None,
    target_delivery_id: str | None = None,
    ordering_key: str | None = None,
) -> CheckedEvent:
    """The event as its row, or the 400 of a key or data it cannot be stored with."""
    _check_idempotency_key(idempotency_key)
    serialized = _serialized(data)
    fingerprint = _fingerprint(event_type.value, serialized, ordering_key)
    row = repository.NewEvent(
        id=new_id(IdPrefix.EVENT),
        organization_id=org_id,
        type=event_type.value,
        data_json=serialized.decode(),
        idempotency_key=idempotency_key,
        fingerprint=fingerprint if idempotency_key is not None else None,
        target_endpoint_id=target_endpoint_id,
        target_delivery_id=target_delivery_id,
        ordering_key=ordering_key,
        # The accepting request's context: the relay, if it publishes, continues this trace.
        trace_context=telemetry.trace_headers() or None,
    )
    return CheckedEvent(row, data)


async def record_and_publish(outbox: EventOutbox, event: CheckedEvent) -> str:
    """Store the event (the outbox), then publish it; return the event id.

    With an idempotency key, a repeat of the same request returns the first event's id and
    a different request under the same key is a 409. Concurrent requests share one INSERT
    (repository.EventInserts); the published mark is written after the answer.
    """
    row = event.row
    created_at = await outbox.inserts.insert(row)
    if created_at is None:
        return await _repeated(outbox.pool, row)
    _accepted(row)
    if row.idempotency_key is not None and row.idempotency_key == outbox.hold_key:
        await _hold_before_publish(row.id)
    await outbox.publishes.publish(event.message(created_at), row.trace_context)
    return row.id


async def record_and_publish_many(
    outbox: EventOutbox, events: Sequence[CheckedEvent]
) -> list[str | ConflictError]:
    """A batch's events: one INSERT, then one confirmed publish (one message) for the new
    ones; each one's event id, or its 409, in order. Idempotency as record_and_publish, per
    event: a key repeated within the batch is answered as a later request with it would be.
    """
    outcomes: list[str | ConflictError | None] = [None] * len(events)
    first_use: set[str] = set()
    fresh: list[int] = []
    repeats: list[int] = []
    for index, event in enumerate(events):
        key = event.row.idempotency_key
        if key is not None and key in first_use:
            repeats.append(index)  # one statement cannot reserve a key twice: after it
            continue
        if key is not None:
            first_use.add(key)
        fresh.append(index)
    created = await outbox.inserts.insert_now([events[i].row for i in fresh])
    messages: list[EventMessage] = []
    for index, created_at in zip(fresh, created, strict=True):
        if created_at is None:
            repeats.append(index)
            continue
        _accepted(events[index].row)
        messages.append(events[index].message(created_at))
        outcomes[index] = events[index].row.id
    for index in repeats:
        try:
            outcomes[index] = await _repeated(outbox.pool, events[index].row)
        except ConflictError as exc:
            outcomes[index] = exc
    if messages:
        # One span for the batch's publish: it continues the request's trace.
        trace_context = events[0].row.trace_context
        await publish_now(outbox.broker, outbox.topology, outbox.marks, messages, trace_context)
    answered = [outcome for outcome in outcomes if outcome is not None]
    assert len(answered) == len(events)  # every event is fresh or a repeat
    return answered


def _accepted(row: repository.NewEvent) -> None:
    EVENTS_ACCEPTED.labels(type=row.type).inc()
    telemetry.annotate(event_id=row.id, organization_id=row.organization_id)


async def _hold_before_publish(event_id: str) -> None:
    """Committed, not yet published: where a crash leaves the outbox relay the only way on."""
    log.warning("chaos: holding a committed event before its publish", extra={"event_id": event_id})
    await asyncio.sleep(CHAOS_HOLD_S)


def _check_idempotency_key(key: str | None) -> None:
    if key is None:
        return
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise BadRequestError(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
        )
    if "\x00" in key:  # text cannot hold it: it would fail the whole insert batch
        raise BadRequestError("Idempotency-Key cannot contain NUL characters")


async def _repeated(pool: asyncpg.Pool, event: repository.NewEvent) -> str:
    """The event that was not stored: its key's first event's id, a 409, or a 401."""
    existing = None
    if event.idempotency_key is not None:
        existing = await repository.get_by_idempotency_key(
            pool, event.organization_id, event.idempotency_key
        )
    if existing is None:
        # No row under the key (or no key): the org is gone, its events with it. Its token
        # was still cached (HOOKPOST_TOKEN_CACHE_TTL_S); now it is refused like any other.
        raise UnauthorizedError("invalid bearer token")
    if existing["idempotency_fingerprint"] != event.fingerprint:
        raise ConflictError(
            "Idempotency-Key was already used with a different request body",
            eventId=existing["id"],
        )
    # Published already, or the relay will: a repeat never publishes twice on purpose.
    return str(existing["id"])


def check_storable(data: dict[str, Any]) -> None:
    """Raise a 400 for data jsonb cannot hold (what every stored payload must pass)."""
    _serialized(data)


async def record_in_transaction(
    conn: asyncpg.Connection,
    org_id: str,
    event_type: EventType,
    data: dict[str, Any],
    *,
    target_endpoint_id: str | None = None,
    ordering_key: str | None = None,
) -> asyncpg.Record:
    """Write an outbox event inside the caller's transaction (with the state change it
    reports): it exists exactly when that change committed. Publish it after the commit with
    publish_recorded; if that publish fails, the outbox relay publishes it later. With a
    `target_endpoint_id`, that endpoint alone receives it (a report job's own webhook).
    `ordering_key`: a job's events use the job's id (ordered delivery, SPEC §4).
    """
    event = check_event(
        org_id, event_type, data, target_endpoint_id=target_endpoint_id, ordering_key=ordering_key
    )
    return await repository.insert_event(conn, event.row)


async def publish_recorded(outbox: EventOutbox, records: list[asyncpg.Record]) -> None:
    """Publish events record_in_transaction wrote, once their transaction has committed."""
    for record in records:
        EVENTS_ACCEPTED.labels(type=record["type"]).inc()
        telemetry.annotate(organization_id=record["organization_id"])
        await publish_now(
            outbox.broker,
            outbox.topology,
            outbox.marks,
            [to_message(record)],
            record["trace_context"],
        )


async def get_event(pool: asyncpg.Pool, org_id: str, event_id: str) -> asyncpg.Record:
    record = await repository.get_event(pool, org_id, event_id)
    if record is None:
        raise NotFoundError(f"event {event_id!r} not found")
    return record
