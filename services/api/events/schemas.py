from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from libs.infra.broker.messages import OrderingKey
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
