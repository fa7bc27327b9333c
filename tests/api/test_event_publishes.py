"""How the api groups the publishes of requests stored together (publishing.EventPublishes):
unit tests of the grouping logic with a fake broker link that records each publish and holds
it until released. The real broker path is test_event_batching.py's; the dispatcher's side of
the carried traces is tests/observability/test_traces.py's."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
from faststream.rabbit import RabbitExchange

from libs.infra.broker.messages import (
    BATCH_ROUTING_KEY,
    EVENT_TRACES_HEADER,
    EventMessage,
    batch_items,
    event_traces_of,
)
from libs.infra.broker.topology import Topology
from services.api.events.publishing import MAX_CONCURRENT_PUBLISHES, EventPublishes
from tests.support.factories import event_message


class HeldBroker:
    """Records every publish and confirms it only once `release` is set."""

    def __init__(self) -> None:
        self.published: list[tuple[bytes, str, dict[str, Any]]] = []
        self.started: asyncio.Queue[None] = asyncio.Queue()  # one item per publish begun
        self.release = asyncio.Event()

    async def publish(
        self,
        body: bytes,
        *,
        exchange: RabbitExchange,
        routing_key: str,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        self.published.append((body, routing_key, dict(headers or {})))
        self.started.put_nowait(None)
        await self.release.wait()


class Marks:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def add(self, event_id: str) -> None:
        self.ids.append(event_id)


def traceparent(n: int) -> dict[str, str]:
    return {"traceparent": f"00-{n:032x}-{n:016x}-01"}


def request_context(n: int) -> dict[str, str]:
    """What a request stores: its traceparent, and a tracestate (a group carries no tracestate)."""
    return {**traceparent(n), "tracestate": f"vendor=v{n}"}


def publishes() -> tuple[EventPublishes, HeldBroker, Marks]:
    broker, marks = HeldBroker(), Marks()
    grouped = EventPublishes(broker, Topology("hookpost_unit"), marks)  # type: ignore[arg-type]
    return grouped, broker, marks


async def test_a_lone_event_is_published_as_itself_in_its_own_trace() -> None:
    grouped, broker, marks = publishes()
    broker.release.set()
    event = event_message("org_1")

    assert await grouped.publish(event, traceparent(1)) is True

    [(body, routing_key, headers)] = broker.published
    assert EventMessage.model_validate_json(body) == event
    assert routing_key == event.type
    assert headers == traceparent(1)
    assert marks.ids == [event.id]


async def test_events_waiting_for_a_publish_slot_go_as_one_message_carrying_each_trace() -> None:
    grouped, broker, marks = publishes()
    first = [event_message("org_1") for _ in range(MAX_CONCURRENT_PUBLISHES)]
    held = []
    for n, event in enumerate(first):  # one at a time: each takes a slot of its own
        held.append(asyncio.create_task(grouped.publish(event, traceparent(n))))
        await asyncio.wait_for(broker.started.get(), timeout=5)
    later = [event_message(f"org_{n}") for n in range(5)]
    waiting = [
        asyncio.create_task(grouped.publish(e, request_context(10 + n) if n != 2 else None))
        for n, e in enumerate(later)
    ]

    broker.release.set()
    assert await asyncio.gather(*held, *waiting) == [True] * (len(first) + len(later))

    body, routing_key, headers = broker.published[-1]
    assert len(broker.published) == MAX_CONCURRENT_PUBLISHES + 1
    assert routing_key == BATCH_ROUTING_KEY
    assert [item["id"] for item in batch_items(body)] == [e.id for e in later]
    # The message continues the first event's trace; each event's own travels by its id
    # (the event without one has none).
    assert headers["traceparent"] == traceparent(10)["traceparent"]
    assert event_traces_of(headers) == {
        e.id: traceparent(10 + n) for n, e in enumerate(later) if n != 2
    }
    assert sorted(marks.ids) == sorted(e.id for e in first + later)


def test_a_header_that_does_not_parse_carries_no_traces() -> None:
    header = EVENT_TRACES_HEADER
    assert event_traces_of({header: "not json"}) == {}
    assert event_traces_of({header: orjson.dumps(["a"]).decode()}) == {}
    assert event_traces_of({header: b'{"evt_1": {"traceparent": "x"}}'}) == {
        "evt_1": {"traceparent": "x"}
    }
    assert event_traces_of(None) == {}
