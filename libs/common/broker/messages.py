"""The message contracts on the wire between services (and for AMQP producers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode("utf-8")


class EventMessage(WireModel):
    """Published to `<prefix>.events` with routing key = event type; message_id = id."""

    id: str
    organization_id: str
    type: str
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    # A /test call aims its synthetic event at one endpoint and names the delivery up front.
    target_endpoint_id: str | None = None
    target_delivery_id: str | None = None


class DeliveryTask(WireModel):
    """Published to `<prefix>.deliveries` (and the retry tiers) for one (event, endpoint).

    The attempt number travels in the ATTEMPT_HEADER, so the body never changes between
    attempts. `data` is already capped to the payload limit.
    """

    delivery_id: str
    event_id: str
    endpoint_id: str
    organization_id: str
    type: str
    event_created_at: datetime
    data: dict[str, Any]
