from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from libs.infra.broker.messages import MAX_BATCH_EVENTS, OrderingKey
from services.api.schemas import ApiModel


class EventIn(ApiModel):
    type: str = Field(description="A wire event type, e.g. `mapping.completed`.")
    data: dict[str, Any] = Field(default_factory=dict, description="The event's payload.")
    ordering_key: OrderingKey | None = Field(
        default=None,
        description=(
            "Optional, 1 to 128 characters. An endpoint with `orderedDelivery` receives the"
            " events of one key one at a time, in the order they were accepted; other keys"
            " go in parallel."
        ),
    )


class EventAccepted(ApiModel):
    event_id: str


class EventOut(ApiModel):
    id: str
    type: str
    data: dict[str, Any]
    created_at: datetime


class BatchEventIn(EventIn):
    idempotency_key: str | None = Field(
        default=None,
        description=(
            "This event's own `Idempotency-Key` (1 to 255 characters), with the single"
            " route's meaning: the same key and event again → the first eventId; the same"
            " key with another event → that item's 409."
        ),
    )


class BatchIn(ApiModel):
    """The request: 1 to MAX_BATCH_EVENTS events (each item is checked on its own)."""

    events: list[BatchEventIn] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class BatchEnvelope(ApiModel):
    """What is read of the request before its items: a list of the right length."""

    events: list[Any] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class BatchItemResult(ApiModel):
    index: int = Field(description="The item's position in `events`, from 0.")
    status: int = Field(description="202 when accepted, else the single route's status.")
    event_id: str | None = Field(default=None, description="Set when accepted (202).")
    error: dict[str, Any] | None = Field(
        default=None,
        description="Otherwise the `error` of the body the single route would answer.",
    )


class BatchAccepted(ApiModel):
    accepted: int
    failed: int
    results: list[BatchItemResult] = Field(description="One per item, in the request's order.")
