from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, status

from services.api.auth import Org
from services.api.events import service
from services.api.events.rate_limit import IngestRateLimit
from services.api.events.schemas import EventAccepted, EventIn, EventOut
from services.api.routing import ApiRoute
from services.api.state import State

router = APIRouter(prefix="/events", tags=["events"], route_class=ApiRoute)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventAccepted,
    dependencies=[IngestRateLimit],
)
async def ingest_event(
    body: EventIn,
    state: State,
    org: Org,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> EventAccepted:
    """Accept an event for delivery to every matching endpoint → 202 `{"eventId"}`.

    The event is stored before the answer and published with broker confirms (an outbox
    relay publishes it later if the broker is away). With `Idempotency-Key`, repeating the
    same request returns the same `eventId`; reusing the key with another body is a 409.
    Each organization may send `HOOKPOST_EVENTS_RATE_PER_S` events per second (bursts of
    `HOOKPOST_EVENTS_RATE_BURST`); beyond that the answer is 429 with `Retry-After`.
    """
    # Production serves this request from events/ingest_asgi.py, which must stay equal to
    # this route; both run service.ingest.
    event_id = await service.ingest(state.outbox, org.id, body.type, body.data, idempotency_key)
    return EventAccepted(event_id=event_id)


@router.get("/{event_id}", response_model=EventOut)
async def get_event(event_id: str, state: State, org: Org) -> EventOut:
    """An event with its full data (what a truncated delivery's `dataRef` points at)."""
    record = await service.get_event(state.pool, org.id, event_id)
    return EventOut.model_validate(dict(record))
