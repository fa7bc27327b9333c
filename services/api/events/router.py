from __future__ import annotations

from fastapi import APIRouter

from services.api.auth import Org
from services.api.events import service
from services.api.events.schemas import EventOut
from services.api.routing import ApiRoute
from services.api.state import State

# POST /events is events/ingest.py: the hot path, a plain route ahead of this router.
router = APIRouter(prefix="/events", tags=["events"], route_class=ApiRoute)


@router.get("/{event_id}", response_model=EventOut)
async def get_event(event_id: str, state: State, org: Org) -> EventOut:
    """An event with its full data (what a truncated delivery's `dataRef` points at)."""
    record = await service.get_event(state.pool, org.id, event_id)
    return EventOut.model_validate(dict(record))
