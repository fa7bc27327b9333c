"""Phase: batch ingest (issue 21 target 3: ≥ 2,000 deliveries/s with 1 endpoint per event).

    http  closed loop of `POST /api/v1/events/batch` with BATCH_SIZE events each, 1 endpoint
          per event: deliveries/s at the receiver in the measured window (`batch_dps`)
    amqp  the same events published by an AMQP producer as one message of BATCH_SIZE events
          each (a JSON array, docs/producers.md) (`amqp_batch_dps`)

Each door has its own org and receiver group, and waits for its backlog before the next.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import orjson

from benchmarks import load
from benchmarks.common import log, sleep_until
from benchmarks.config import MAX_BACKLOG, WARMUP_S
from benchmarks.measure import cpu_report, snapshot
from benchmarks.rig import Pipeline, subscribe
from harness.broker import EventPublisher
from harness.orgs import create_org
from libs.domain.ids import IdPrefix, new_id
from libs.infra.broker.messages import BATCH_ROUTING_KEY, EventMessage, batch_body

BATCH_SIZE = int(os.environ.get("BENCH_BATCH_SIZE", 100))
BATCH_WINDOW_S = float(os.environ.get("BENCH_BATCH_WINDOW_S", 20))
BATCHES_IN_FLIGHT = int(os.environ.get("BENCH_BATCHES_IN_FLIGHT", 6))
TARGET_DPS = 2000.0

SendBatch = Callable[[int, load.Sent], Awaitable[None]]


@dataclass
class BatchDoor:
    deliveries_per_s: float
    # per service, RabbitMQ and PostgreSQL: robust to a busy machine, unlike deliveries/s
    cpu_s_per_1000_deliveries: dict[str, float]
    other_processes_cores_busy: float  # what else ran on the machine meanwhile
    events_sent: int
    duplicate_posts: int
    all_delivered: bool
    errors: dict[str, int]  # failed requests or publishes, and refused items, by what


@dataclass
class BatchResult:
    batch_size: int
    batches_in_flight: int
    window_s: float
    batch_dps: float  # POST /api/v1/events/batch
    amqp_batch_dps: float  # one AMQP message of batch_size events
    target_dps: float
    met: bool
    http: BatchDoor
    amqp: BatchDoor


async def measure(pipe: Pipeline) -> BatchResult:
    log(f"batch: {BATCH_SIZE} events per request, {BATCHES_IN_FLIGHT} in flight, 1 endpoint")
    http = await _door(pipe, "batchhttp", lambda org: _http_sender(pipe, org["apiToken"]))
    log(f"  POST /events/batch: {http.deliveries_per_s:,.0f} deliveries/s")
    publisher = await EventPublisher(pipe.rig.env.amqp_url, pipe.rig.env.name).start()
    try:
        amqp = await _door(
            pipe, "batchamqp", lambda org: _amqp_sender(publisher, org["organizationId"])
        )
    finally:
        await publisher.close()
    log(f"  AMQP, {BATCH_SIZE} events per message: {amqp.deliveries_per_s:,.0f} deliveries/s")
    return BatchResult(
        batch_size=BATCH_SIZE,
        batches_in_flight=BATCHES_IN_FLIGHT,
        window_s=BATCH_WINDOW_S,
        batch_dps=round(http.deliveries_per_s, 1),
        amqp_batch_dps=round(amqp.deliveries_per_s, 1),
        target_dps=TARGET_DPS,
        met=http.deliveries_per_s >= TARGET_DPS,
        http=http,
        amqp=amqp,
    )


async def _door(
    pipe: Pipeline, scenario: str, sender: Callable[[dict[str, str]], SendBatch]
) -> BatchDoor:
    """A closed loop of batches for WARMUP_S + BATCH_WINDOW_S; deliveries in the window."""
    rig = pipe.rig
    org = await asyncio.to_thread(create_org, pipe.stack.env, scenario, "PRO")
    await subscribe(rig, pipe.api_url, org["apiToken"], scenario, 1)
    base = (await rig.arrivals.refresh()).get(scenario, 0)
    sent = load.Sent()
    t0 = time.time()
    w0, w1 = t0 + WARMUP_S, t0 + WARMUP_S + BATCH_WINDOW_S
    generator = asyncio.create_task(
        load.closed_loop(
            sender(org), until=w1, concurrency=BATCHES_IN_FLIGHT, fanout=1,
            arrivals=rig.arrivals, scenario=scenario, max_backlog=MAX_BACKLOG, sent=sent,
        )
    )  # fmt: skip
    await sleep_until(w0)
    before = snapshot(pipe.processes())
    await sleep_until(w1)
    after = snapshot(pipe.processes())
    await generator
    drained = await rig.wait_arrivals(scenario, base + len(sent.events), timeout=90)
    records = (await rig.records(scenario))[base:]
    in_window = sum(1 for r in records if before.t <= r.arrived < after.t)
    cpu = cpu_report(before, after, in_window)
    per_event: dict[str | None, int] = {}
    for record in records:
        per_event[record.event_id] = per_event.get(record.event_id, 0) + 1
    return BatchDoor(
        deliveries_per_s=in_window / (after.t - before.t),
        cpu_s_per_1000_deliveries=cpu.cpu_s_per_1000_deliveries,
        other_processes_cores_busy=cpu.other_processes_cores_busy,
        events_sent=len(sent.events),
        duplicate_posts=sum(n - 1 for n in per_event.values() if n > 1),
        all_delivered=drained,
        errors=sent.errors,
    )


def _http_sender(pipe: Pipeline, token: str) -> SendBatch:
    url = f"{pipe.api_url}/api/v1/events/batch"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    session = pipe.rig.session

    async def send(n: int, sent: load.Sent) -> None:
        first = n * BATCH_SIZE
        body = b'{"events":[' + b",".join(load.event_body(first + i) for i in range(BATCH_SIZE))
        t_send = time.time()
        try:
            async with session.post(url, data=body + b"]}", headers=headers) as response:
                payload = await response.read()
                if response.status != 200:
                    sent.error(f"HTTP {response.status}")
                    return
        except (aiohttp.ClientError, TimeoutError) as exc:
            sent.error(type(exc).__name__)
            return
        t_answer = time.time()
        for result in orjson.loads(payload)["results"]:
            if result["status"] == 202:
                sent.events.append((t_send, t_answer, result["eventId"]))
            else:
                sent.error(f"item {result['status']}")

    return send


def _amqp_sender(publisher: EventPublisher, organization_id: str) -> SendBatch:
    async def send(n: int, sent: load.Sent) -> None:
        first = n * BATCH_SIZE
        events = [
            EventMessage(
                id=new_id(IdPrefix.EVENT),
                organization_id=organization_id,
                type="mapping.completed",
                data=orjson.loads(load.event_body(first + i))["data"],
                created_at=datetime.now(UTC),
            )
            for i in range(BATCH_SIZE)
        ]
        t_send = time.time()
        try:
            await publisher.publish_raw(batch_body(events), BATCH_ROUTING_KEY, events[0].id)
        except Exception as exc:  # the bench counts any failure and goes on
            sent.error(type(exc).__name__)
            return
        t_answer = time.time()
        sent.events.extend((t_send, t_answer, event.id) for event in events)

    return send
