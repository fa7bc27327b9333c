from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from services.api.schemas import ApiModel


class EventIn(ApiModel):
    type: str = Field(description="A wire event type, e.g. `mapping.completed`.")
    data: dict[str, Any] = Field(default_factory=dict, description="The event's payload.")


class EventAccepted(ApiModel):
    event_id: str


class EventOut(ApiModel):
    id: str
    type: str
    data: dict[str, Any]
    created_at: datetime
