"""Putting an outbox event on the broker: the message, its routing, the published_at mark."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack

import asyncpg

from libs.infra import telemetry
from libs.infra.batching import Batcher
from libs.infra.broker.messages import (
    BATCH_ROUTING_KEY,
    EventMessage,
    batch_body,
    event_traces_header,
)
from libs.infra.broker.topology import Topology
from services.api.broker import BrokerLink, BrokerUnavailable
from services.api.events import repository
from services.api.metrics import EVENTS_PUBLISHED, PUBLISH_FAILURES

log = logging.getLogger("hookpost.api.outbox")

MARK_DELAY_S = 0.05  # the longest a confirmed event waits before its mark is sent
MARK_BATCH_MAX = 1000
# The events of requests stored together go out as one message (EventPublishes).
PUBLISH_BATCH_MAX = 200  # events per message, within the dispatcher's MAX_BATCH_EVENTS
MAX_CONCURRENT_PUBLISHES = 2


def to_message(record: asyncpg.Record) -> EventMessage:
    """A stored event row as its message (the row's columns are the message's fields)."""
    return EventMessage.model_validate(dict(record))


async def publish_event(
    broker: BrokerLink,
    topology: Topology,
    message: EventMessage,
    trace_context: dict[str, str] | None = None,
) -> None:
    """Publish with confirms (routing key = event type); raise BrokerUnavailable otherwise.

    `trace_context`: the one stored with the event, so a relayed publish, seconds or hours
    later, still continues the trace of the request that accepted the event.
    """
    await _publish(broker, topology, [message], trace_context)


async def _publish(
    broker: BrokerLink,
    topology: Topology,
    messages: Sequence[EventMessage],
    trace_context: dict[str, str] | None,
    event_contexts: Mapping[str, dict[str, str]] | None = None,
) -> None:
    """One event as itself, several as one batch message (one confirm for all of them).

    `event_contexts`: the batch's events' own stored trace contexts, by id, when they are not
    all `trace_context` (events of several requests). The message then carries each one's
    `traceparent` (EVENT_TRACES_HEADER); when spans are recorded, every event's publish is a
    span in its own trace, as a lone event's is, and its `traceparent` is that span's."""
    exchange = topology.events_exchange
    first = messages[0]
    alone = len(messages) == 1
    routing_key = first.type if alone else BATCH_ROUTING_KEY

    def publish_span(
        message: EventMessage, parent: dict[str, str] | None
    ) -> AbstractContextManager[dict[str, str]]:  # yields the span's trace headers
        return telemetry.producer_span(
            f"{exchange.name} publish",
            exchange.name,
            routing_key,
            parent=parent,
            event_id=message.id,
            organization_id=message.organization_id,
        )

    with ExitStack() as spans:
        headers = spans.enter_context(publish_span(first, trace_context))
        if not alone:
            contexts, recording = event_contexts or {}, telemetry.recording()
            traces: dict[str, dict[str, str]] = {}
            for message in messages:
                carrier = contexts.get(message.id)
                if carrier is not None and recording:
                    if message is first:  # its publish span is the message's own
                        carrier = headers
                    else:
                        carrier = spans.enter_context(publish_span(message, carrier))
                # `traceparent` only: a `tracestate` may be 512 bytes, and 200 of them would
                # not fit in one AMQP header frame.
                if carrier and "traceparent" in carrier:
                    traces[message.id] = {"traceparent": carrier["traceparent"]}
            headers = {**headers, **event_traces_header(traces)}
        await broker.publish(
            first.to_bytes() if alone else batch_body(messages),
            exchange=exchange,
            routing_key=routing_key,
            message_id=first.id,
            headers=headers,
        )


class PublishedMarks:
    """Sets `published_at` on confirmed events in the background: one UPDATE per batch, one
    batch at a time, so a request answers as soon as its event is confirmed.

    The mark only tells the outbox relay that the event needs no republishing. A mark that
    is late, fails, or is lost with the process means the relay publishes that event again
    once it is `outbox_relay_grace_s` old, and the dispatcher drops the duplicate (UNIQUE
    (event_id, endpoint_id)): a duplicate message at worst, never a lost event. To keep even
    that rare, marks wait at most a tenth of the grace period before they are written.
    """

    def __init__(self, pool: asyncpg.Pool, relay_grace_s: float) -> None:
        self._pool = pool
        self._batcher: Batcher[str, None] = Batcher(
            self._write,
            max_items=MARK_BATCH_MAX,
            max_delay_s=min(MARK_DELAY_S, relay_grace_s / 10),
            max_concurrent_writes=1,
        )

    def add(self, event_id: str) -> None:
        try:
            self._batcher.submit_nowait(event_id)
        except RuntimeError:  # closed: the api is stopping; the relay will see to it
            log.warning("event left unmarked at shutdown", extra={"event_id": event_id})

    async def _write(self, event_ids: list[str]) -> list[None]:
        try:
            await repository.mark_published(self._pool, event_ids)
        except Exception:
            log.exception("could not mark events published", extra={"count": len(event_ids)})
        return [None] * len(event_ids)

    async def close(self) -> None:
        """Write every mark still collected (at shutdown, after the last request)."""
        await self._batcher.close()


class EventPublishes:
    """The confirmed publishes of just-stored events from concurrent requests, grouped as
    their inserts are (repository.EventInserts): a publish goes out on the next loop turn,
    or, while both publish slots await their confirms, waits and keeps collecting, so the
    events of requests that arrive together travel as one batch message with one confirm
    (an idle api still publishes each event at once, as itself). The broker then carries,
    and the dispatcher consumes, one message per group instead of one per event.

    A lone event's message continues its request's trace in its headers; a group's continues
    the first one's, and carries every event's own `traceparent` (EVENT_TRACES_HEADER) for
    the dispatcher: with spans recorded, that of the event's own publish span (`_publish`).
    """

    def __init__(self, broker: BrokerLink, topology: Topology, marks: PublishedMarks) -> None:
        self._broker = broker
        self._topology = topology
        self._marks = marks
        self._batcher: Batcher[tuple[EventMessage, dict[str, str] | None], bool] = Batcher(
            self._publish_many,
            max_items=PUBLISH_BATCH_MAX,
            max_delay_s=0.0,
            max_concurrent_writes=MAX_CONCURRENT_PUBLISHES,
        )

    async def publish(self, message: EventMessage, trace_context: dict[str, str] | None) -> bool:
        """As `publish_now` for this one event: False when it was left for the relay."""
        return await self._batcher.submit((message, trace_context))

    async def _publish_many(
        self, group: list[tuple[EventMessage, dict[str, str] | None]]
    ) -> list[bool]:
        messages = [message for message, _ in group]
        contexts = {message.id: context for message, context in group if context}
        published = await publish_now(
            self._broker, self._topology, self._marks, messages, group[0][1], contexts
        )
        return [published] * len(group)

    async def close(self) -> None:
        """Publish what is still collected (at shutdown, after the last request)."""
        await self._batcher.close()


async def publish_now(
    broker: BrokerLink,
    topology: Topology,
    marks: PublishedMarks,
    messages: Sequence[EventMessage],
    trace_context: dict[str, str] | None,
    event_contexts: Mapping[str, dict[str, str]] | None = None,
) -> bool:
    """Try to publish just-stored events (several: as one batch message); on failure the
    relay will, each on its own (the rows are safe)."""
    if not messages:
        return True
    try:
        await _publish(broker, topology, messages, trace_context, event_contexts)
    except BrokerUnavailable as exc:
        PUBLISH_FAILURES.labels(what="event").inc(len(messages))
        log.warning(
            "events left for the outbox relay",
            extra={"event_id": messages[0].id, "count": len(messages), "error": str(exc)},
        )
        return False
    EVENTS_PUBLISHED.labels(path="inline").inc(len(messages))
    for message in messages:
        marks.add(message.id)
    return True
