"""The message contracts on the wire between services (and for AMQP producers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import aio_pika
import orjson
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from libs.domain.envelope import capped_data
from libs.domain.ordering import MAX_ORDERING_KEY_LENGTH


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode("utf-8")


def persistent_message(
    body: bytes, message_id: str | None, headers: Mapping[str, Any] | None = None
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


# 1 to 128 characters, no NUL (a text column cannot hold it): the api's `orderingKey` too.
OrderingKey = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ORDERING_KEY_LENGTH, pattern=r"^[^\x00]*$"),
]


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
    ordering_key: OrderingKey | None = Field(
        default=None,
        description=(
            "Optional: an endpoint with ordered delivery receives the events of one key one"
            " at a time, in event id order (a message with an invalid key is rejected)."
        ),
    )

    def message(self, trace_headers: Mapping[str, str] | None = None) -> aio_pika.Message:
        """As it goes on the wire (routing key: its type)."""
        return persistent_message(self.to_bytes(), self.id, trace_headers)


# Many events in one message (the api's batches, AMQP producers): the body is a JSON array of
# EventMessage objects, each read as a message of its own would be (docs/producers.md).
MAX_BATCH_EVENTS = 500
BATCH_ROUTING_KEY = "batch"  # what hookpost routes its own batches by (any key reaches it)


def is_batch(body: bytes) -> bool:
    """An array body is a batch; anything else is one event (or malformed)."""
    return body.lstrip()[:1] == b"["


def batch_items(body: bytes) -> list[Any]:
    """The items of a batch body, each still to be validated as an EventMessage; ValueError
    for a body that is not a JSON array of 1 to MAX_BATCH_EVENTS items."""
    items = orjson.loads(body)  # orjson.JSONDecodeError is a ValueError
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH_EVENTS:
        raise ValueError(f"a batch is a JSON array of 1 to {MAX_BATCH_EVENTS} events")
    return items


def batch_body(events: Sequence[EventMessage]) -> bytes:
    return b"[" + b",".join(event.to_bytes() for event in events) + b"]"


# On a batch message of the api's (several requests' events): each event's own trace context
# (`traceparent`, `tracestate`), by event id, as JSON. The message's own trace headers can
# continue one request's trace only; with these, the dispatcher handles each event in its own.
EVENT_TRACES_HEADER = "x-hookpost-event-traces"


def event_traces_header(traces: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The header carrying these events' trace contexts (none when there are none)."""
    return {EVENT_TRACES_HEADER: orjson.dumps(traces).decode()} if traces else {}


def event_traces_of(headers: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    """The events' trace contexts a message carries; {} when it carries none, or a header that
    does not parse (a trace is never a reason to refuse an event)."""
    raw = (headers or {}).get(EVENT_TRACES_HEADER)
    if isinstance(raw, bytes):
        raw = raw.decode(errors="replace")
    if not isinstance(raw, str):
        return {}
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {
        str(event_id): {str(k): str(v) for k, v in carrier.items()}
        for event_id, carrier in parsed.items()
        if isinstance(carrier, dict)
    }


class DeliveryTask(WireModel):
    """Published to `<prefix>.deliveries` (and the retry tiers) for one (event, endpoint).

    The attempt number travels in our own header (DeliveryStep), so the body never changes
    between attempts. `data` is already capped to the payload limit.
    """

    delivery_id: str
    event_id: str
    endpoint_id: str
    organization_id: str
    type: str
    event_created_at: datetime
    data: dict[str, Any]
    # Only an ordered endpoint's delivery of a keyed event has one (libs/delivery/ordering.py):
    # when it ends, the next of its line is released.
    ordering_key: str | None = None

    def to_bytes(self) -> bytes:
        # Without the key when there is none: an unordered task's body is what it was.
        return self.model_dump_json(by_alias=True, exclude_defaults=True).encode("utf-8")

    @classmethod
    def from_row(cls, row: Mapping[str, Any], payload_cap_bytes: int) -> DeliveryTask:
        """The task of a delivery row joined with its event's columns (`id`, `event_id`,
        `endpoint_id`, `organization_id`, `type`, `event_created_at`, `data`, and
        `ordering_key` if selected), the data capped to the payload limit."""
        return cls(
            delivery_id=row["id"],
            event_id=row["event_id"],
            endpoint_id=row["endpoint_id"],
            organization_id=row["organization_id"],
            type=row["type"],
            event_created_at=row["event_created_at"],
            data=capped_data(
                row["event_id"],
                row["type"],
                row["event_created_at"],
                row["data"],
                payload_cap_bytes,
            ),
            ordering_key=row.get("ordering_key"),
        )


# Our own headers: x-* belong to the broker (SPEC §7).
ATTEMPT_HEADER = "hookpost-attempt"
SCHEDULE_START_HEADER = "hookpost-schedule-start"
# What a sharded topology hashes to pick a step's work queue (libs/infra/broker/topology.py):
# one endpoint's steps, first attempt and retries alike, share one shard.
ENDPOINT_HEADER = "hookpost-endpoint"


@dataclass(frozen=True)
class DeliveryStep:
    """A delivery task and the attempt it is at: what a message on the sender queue asks.

    `schedule_start` is the attempt that opened the current retry schedule (a manual retry
    opens a new one). Both are None on a message without our headers: the delivery's row
    then says which attempt is next. Every publisher of a task (the api's manual retry, the
    dispatcher, the retry tiers) writes these headers here, and the sender reads them here.
    """

    task: DeliveryTask
    attempt: int | None = 1
    schedule_start: int | None = 1

    @classmethod
    def from_message(cls, body: bytes, headers: Mapping[str, Any]) -> DeliveryStep:
        """Raises pydantic's ValidationError for a body that is not a DeliveryTask."""
        return cls(
            DeliveryTask.model_validate_json(body),
            _int_header(headers, ATTEMPT_HEADER),
            _int_header(headers, SCHEDULE_START_HEADER),
        )

    def headers(self) -> dict[str, int | str]:
        found = {ATTEMPT_HEADER: self.attempt, SCHEDULE_START_HEADER: self.schedule_start}
        return {
            ENDPOINT_HEADER: self.task.endpoint_id,
            **{name: value for name, value in found.items() if value is not None},
        }

    def message(self, trace_headers: Mapping[str, str] | None = None) -> aio_pika.Message:
        return persistent_message(
            self.task.to_bytes(), self.task.delivery_id, {**self.headers(), **(trace_headers or {})}
        )


def _int_header(headers: Mapping[str, Any], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
