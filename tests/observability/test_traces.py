"""One trace per event, across real processes: api → dispatcher → sender → HTTP, retries
included, exported over OTLP/HTTP and decoded by a receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from datetime import UTC, datetime, timedelta

import aio_pika
import asyncpg
import httpx
import pytest

from harness.receiver import Receiver
from harness.waiting import eventually
from libs.domain.ids import IdPrefix, new_id
from libs.infra.broker.messages import BATCH_ROUTING_KEY, event_traces_header
from tests.observability.conftest import ObservedStack
from tests.support.factories import deliveries_of, make_endpoint
from tests.support.otlp_receiver import ReceivedSpan

pytestmark = pytest.mark.e2e


def one(spans: list[ReceivedSpan], attempt: int | None = None, **match: object) -> ReceivedSpan:
    """The single span with these fields (and `hookpost.attempt`, when given)."""
    found = [
        s
        for s in spans
        if all(getattr(s, k) == v for k, v in match.items())
        and (attempt is None or s.attr("hookpost.attempt") == attempt)
    ]
    assert len(found) == 1, (match, [(s.service, s.name, s.attributes) for s in spans])
    return found[0]


def child_of(span: ReceivedSpan, parent: ReceivedSpan) -> None:
    assert span.trace_id == parent.trace_id, (span.name, parent.name)
    assert span.parent_span_id == parent.span_id, (span.name, "is not a child of", parent.name)


def spans_arrived(required: Counter[str], trace_id: str | None = None):
    """A wait condition: at least these many spans of each name (in one trace, if given).

    Every service exports in its own batches, so the last span of a chain to end is not
    necessarily the last to arrive: wait for each span an assertion will look at.
    """

    def done(spans: list[ReceivedSpan]) -> bool:
        seen = Counter(s.name for s in spans if trace_id is None or s.trace_id == trace_id)
        return all(seen[name] >= count for name, count in required.items())

    return done


async def publish_as_a_producer(
    stack: ObservedStack,
    body: object,
    *,
    message_id: str,
    routing_key: str,
    headers: dict[str, str],
) -> None:
    """Publish straight to the events exchange with aio-pika, as an AMQP producer does."""
    connection = await aio_pika.connect(stack.pipe.env["HOOKPOST_AMQP_URL"])
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(f"{stack.pipe.prefix}.events")
        await exchange.publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                message_id=message_id,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers=headers,
            ),
            routing_key=routing_key,
            mandatory=True,
        )


async def test_one_event_is_one_trace_through_a_retried_attempt(
    stack: ObservedStack, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    prefix = stack.pipe.prefix
    org = await make_org()
    token = secrets.token_hex(8)
    url = receiver.script("/traced", [500, 200]) + f"?token={token}"
    endpoint = await make_endpoint(db_pool, org.organizationId, url)

    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as client:
        response = await client.post(
            "/api/v1/events",
            json={"type": "mapping.completed", "data": {"mappingJobId": "job_t", "rowCount": 1}},
            headers={"Authorization": f"Bearer {org.apiToken}"},
        )
    assert response.status_code == 202, response.text
    event_id = response.json()["eventId"]

    requests = await receiver.wait_for("/traced", 2, timeout=30)
    [delivery] = await eventually(
        lambda: deliveries_of(db_pool, event_id), lambda r: r and r[0]["status"] == "SUCCEEDED"
    )
    otlp = stack.otlp

    def server_span(spans: list[ReceivedSpan]) -> bool:
        return any(
            s.name == "POST /api/v1/events" and s.attr("hookpost.event_id") == event_id
            for s in spans
        )

    await otlp.wait_for(server_span)
    [server] = [
        s
        for s in otlp.spans
        if s.name == "POST /api/v1/events" and s.attr("hookpost.event_id") == event_id
    ]
    chain = Counter(
        {
            f"{prefix}.events publish": 1,
            f"{prefix}.dispatcher process": 1,
            "first attempt": 1,  # the dispatcher's own (first_attempts.py)
            f"{prefix}.sender process": 1,
            f"{prefix}.retry publish": 1,
            "POST": 2,
        }
    )
    await otlp.wait_for(spans_arrived(chain, server.trace_id))
    spans = otlp.in_trace(server.trace_id)
    event_publish = one(spans, name=f"{prefix}.events publish")
    dispatched = one(spans, name=f"{prefix}.dispatcher process")
    first = one(spans, name="first attempt", attempt=1)
    retry_publish = one(spans, name=f"{prefix}.retry publish")
    second = one(spans, name=f"{prefix}.sender process", attempt=2)
    post_1 = one(spans, name="POST", parent_span_id=first.span_id)
    post_2 = one(spans, name="POST", parent_span_id=second.span_id)

    assert server.parent_span_id == ""  # the caller sent no trace context: a new trace
    assert server.kind == "SERVER" and server.service == "hookpost-api"
    child_of(event_publish, server)
    child_of(dispatched, event_publish)
    child_of(first, dispatched)
    child_of(post_1, first)
    child_of(retry_publish, first)  # the retry tier's TTL hop keeps the headers
    child_of(second, retry_publish)
    child_of(post_2, second)
    assert {s.trace_id for s in spans} == {server.trace_id}
    assert (event_publish.kind, dispatched.kind, first.kind, post_1.kind, second.kind) == (
        "PRODUCER",
        "CONSUMER",
        "INTERNAL",
        "CLIENT",
        "CONSUMER",
    )
    assert dispatched.service == first.service == "hookpost-dispatcher"
    assert second.service == "hookpost-sender"

    # Ids and outcomes on the spans; the URL only masked, never the token.
    assert server.attr("hookpost.event_id") == event_id
    assert server.attr("hookpost.organization_id") == org.organizationId
    assert dispatched.attr("hookpost.event_id") == event_id
    for attempt in (first, second):
        assert attempt.attr("hookpost.delivery_id") == delivery["id"]
        assert attempt.attr("hookpost.endpoint_id") == endpoint.id
        assert attempt.attr("hookpost.organization_id") == org.organizationId
    assert post_1.attr("http.response.status_code") == 500
    assert post_2.attr("http.response.status_code") == 200
    assert post_1.attr("url.full") == receiver.url("/traced") + "?token=••••"
    assert all(token.encode() not in body for body in otlp.raw_bodies)

    # Trace headers stay inside hookpost unless an operator opts in.
    for request in requests:
        assert not {"traceparent", "tracestate"} & {h.lower() for h in request.headers}

    # The first attempt's log lines (the dispatcher's) carry the same trace, and the ids.
    log_path = stack.dispatcher.log_path
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    failed = [line for line in lines if line.get("msg") == "attempt failed: HTTP 500"]
    [line] = [line for line in failed if line.get("delivery_id") == delivery["id"]]
    assert line["trace_id"] == server.trace_id
    assert line["span_id"] == first.span_id
    assert line["event_id"] == event_id and line["endpoint_id"] == endpoint.id
    assert line["url"] == receiver.url("/traced") + "?token=••••"
    assert token not in log_path.read_text() and token not in stack.sender.log_path.read_text()


async def test_an_amqp_producers_traceparent_is_continued(
    stack: ObservedStack, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """Published straight to the broker with aio-pika, carrying the producer's own trace."""
    prefix = stack.pipe.prefix
    org = await make_org()
    await make_endpoint(db_pool, org.organizationId, receiver.script("/amqp-traced", [200]))
    producer_trace, producer_span = secrets.token_hex(16), secrets.token_hex(8)
    event_id = new_id(IdPrefix.EVENT)
    body = {
        "id": event_id,
        "organizationId": org.organizationId,
        "type": "mapping.completed",
        "data": {"mappingJobId": "job_amqp", "rowCount": 2},
        "createdAt": datetime.now(UTC).isoformat(),
    }
    await publish_as_a_producer(
        stack,
        body,
        message_id=event_id,
        routing_key="mapping.completed",
        headers={"traceparent": f"00-{producer_trace}-{producer_span}-01"},
    )

    [request] = await receiver.wait_for("/amqp-traced", 1, timeout=30)
    assert request.json()["eventId"] == event_id
    assert "traceparent" not in {h.lower() for h in request.headers}
    chain = [f"{prefix}.dispatcher process", "first attempt", "POST"]
    await stack.otlp.wait_for(spans_arrived(Counter(chain), producer_trace))
    spans = stack.otlp.in_trace(producer_trace)
    dispatched = one(spans, name=f"{prefix}.dispatcher process")
    assert dispatched.parent_span_id == producer_span
    assert dispatched.attr("hookpost.event_id") == event_id
    attempt = one(spans, name="first attempt")
    child_of(attempt, dispatched)
    child_of(one(spans, name="POST"), attempt)


async def test_an_event_the_outbox_relay_publishes_continues_its_stored_trace(
    stack: ObservedStack, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """An event stored with a trace context but never published (the broker was away)."""
    prefix = stack.pipe.prefix
    org = await make_org()
    await make_endpoint(db_pool, org.organizationId, receiver.script("/relayed", [200]))
    stored_trace, stored_span = secrets.token_hex(16), secrets.token_hex(8)
    event_id = new_id(IdPrefix.EVENT)
    await db_pool.execute(
        "INSERT INTO events (id, organization_id, type, data, created_at, trace_context)"
        " VALUES ($1, $2, 'mapping.completed', $3, $4, $5)",
        event_id,
        org.organizationId,
        {"mappingJobId": "job_relay", "rowCount": 1},
        datetime.now(UTC) - timedelta(seconds=5),  # older than the relay's grace period
        {"traceparent": f"00-{stored_trace}-{stored_span}-01"},
    )

    [request] = await receiver.wait_for("/relayed", 1, timeout=30)
    assert request.json()["eventId"] == event_id
    chain = [f"{prefix}.{step}" for step in ("events publish", "dispatcher process")]
    chain += ["first attempt", "POST"]
    await stack.otlp.wait_for(spans_arrived(Counter(chain), stored_trace))
    spans = stack.otlp.in_trace(stored_trace)
    relay_publish = one(spans, name=f"{prefix}.events publish")
    assert relay_publish.parent_span_id == stored_span
    assert relay_publish.service == "hookpost-api"
    child_of(one(spans, name=f"{prefix}.dispatcher process"), relay_publish)
    child_of(one(spans, name="POST"), one(spans, name="first attempt"))


async def test_events_grouped_in_one_message_each_continue_their_own_trace(
    stack: ObservedStack, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """A batch message as the api publishes the events of requests stored together: its
    headers continue the first request's trace, EVENT_TRACES_HEADER carries each event's."""
    prefix = stack.pipe.prefix
    org = await make_org()
    await make_endpoint(db_pool, org.organizationId, receiver.script("/grouped", [200, 200]))
    message_trace, message_span = secrets.token_hex(16), secrets.token_hex(8)
    traces = [(secrets.token_hex(16), secrets.token_hex(8)) for _ in range(2)]
    events = [
        {
            "id": new_id(IdPrefix.EVENT),
            "organizationId": org.organizationId,
            "type": "mapping.completed",
            "data": {"mappingJobId": f"job_grouped_{n}", "rowCount": n},
            "createdAt": datetime.now(UTC).isoformat(),
        }
        for n in range(2)
    ]
    carried = {
        event["id"]: {"traceparent": f"00-{trace_id}-{span_id}-01"}
        for event, (trace_id, span_id) in zip(events, traces, strict=True)
    }
    await publish_as_a_producer(
        stack,
        events,
        message_id=events[0]["id"],
        routing_key=BATCH_ROUTING_KEY,
        headers={
            "traceparent": f"00-{message_trace}-{message_span}-01",
            **event_traces_header(carried),
        },
    )

    requests = await receiver.wait_for("/grouped", 2, timeout=30)
    assert {r.json()["eventId"] for r in requests} == set(carried)
    chain = Counter(["event dispatch", "first attempt", "POST"])
    for event, (trace_id, span_id) in zip(events, traces, strict=True):
        await stack.otlp.wait_for(spans_arrived(chain, trace_id))
        spans = stack.otlp.in_trace(trace_id)
        dispatched = one(spans, name="event dispatch")
        assert dispatched.parent_span_id == span_id  # the event's own request, not the first's
        assert dispatched.attr("hookpost.event_id") == event["id"]
        assert dispatched.service == "hookpost-dispatcher"
        attempt = one(spans, name="first attempt")
        child_of(attempt, dispatched)
        child_of(one(spans, name="POST"), attempt)
    # The message itself was handled in the trace its own headers continue.
    processed = f"{prefix}.dispatcher process"
    await stack.otlp.wait_for(spans_arrived(Counter([processed]), message_trace))
    message = one(stack.otlp.in_trace(message_trace), name=processed)
    assert message.parent_span_id == message_span


async def test_each_event_the_api_groups_has_its_own_publish_span(
    stack: ObservedStack, make_org, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """Concurrent requests, whose events the api groups into batch messages: every request's
    trace still has its own publish span, and the dispatcher continues the event from it."""
    prefix = stack.pipe.prefix
    publish = f"{prefix}.events publish"
    org = await make_org()
    await make_endpoint(db_pool, org.organizationId, receiver.script("/grouped-api", [200]))
    requests = 40

    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:

        async def post(n: int) -> str:
            response = await client.post(
                "/api/v1/events",
                json={"type": "mapping.completed", "data": {"mappingJobId": f"job_g{n}"}},
                headers={"Authorization": f"Bearer {org.apiToken}"},
            )
            assert response.status_code == 202, response.text
            return response.json()["eventId"]

        event_ids = await asyncio.gather(*(post(n) for n in range(requests)))
    await receiver.wait_for("/grouped-api", requests, timeout=60)

    def server_spans(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
        return {s.attr("hookpost.event_id"): s for s in spans if s.name == "POST /api/v1/events"}

    await stack.otlp.wait_for(lambda spans: set(event_ids) <= set(server_spans(spans)))
    servers = server_spans(stack.otlp.spans)
    chain = Counter([publish, "first attempt", "POST"])
    grouped = 0
    for event_id in event_ids:
        server = servers[event_id]
        await stack.otlp.wait_for(spans_arrived(chain, server.trace_id))
        spans = stack.otlp.in_trace(server.trace_id)
        published = one(spans, name=publish)  # its own, whether alone or grouped
        child_of(published, server)
        assert published.kind == "PRODUCER"
        assert published.attr("hookpost.event_id") == event_id
        if published.attr("messaging.rabbitmq.destination.routing_key") == BATCH_ROUTING_KEY:
            grouped += 1
            await stack.otlp.wait_for(spans_arrived(Counter(["event dispatch"]), server.trace_id))
            dispatched = one(stack.otlp.in_trace(server.trace_id), name="event dispatch")
        else:
            processed = f"{prefix}.dispatcher process"
            await stack.otlp.wait_for(spans_arrived(Counter([processed]), server.trace_id))
            dispatched = one(stack.otlp.in_trace(server.trace_id), name=processed)
        child_of(dispatched, published)
        child_of(one(stack.otlp.in_trace(server.trace_id), name="first attempt"), dispatched)
    # The api did group: a group's events beyond its first had no publish span of their own
    # before each got one.
    assert grouped >= 2, f"{grouped} of {requests} events went in batch messages"
