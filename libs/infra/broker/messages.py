"""The message contracts on the wire between services (and for AMQP producers)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import aio_pika
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode("utf-8")


def persistent_message(
    body: bytes, message_id: str, headers: Mapping[str, Any] | None = None
) -> aio_pika.Message:
    """How every hookpost message goes on the wire when published with aio-pika directly:
    persistent (it must survive a broker restart), JSON, its id as `message_id`."""
    return aio_pika.Message(
        body,
        headers=dict(headers) if headers else None,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
    )


class EventMessage(WireModel):
    """Published to `<prefix>.events` with routing key = event type; message_id = id."""

    id: str = Field(description="`evt_` + a ULID, unique per event: the idempotency key.")
    organization_id: str = Field(description="The organization whose endpoints receive it.")
    type: str = Field(description="The event type; also the routing key.")
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="The payload; its schema per type is served by GET /api/v1/event-types.",
    )
    created_at: datetime = Field(description="When the event happened (RFC 3339).")
    # A /test call aims its synthetic event at one endpoint and names the delivery up front.
    target_endpoint_id: str | None = Field(
        default=None, description="Internal (the api's /test calls): producers leave it out."
    )
    target_delivery_id: str | None = Field(
        default=None, description="Internal (the api's /test calls): producers leave it out."
    )


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
