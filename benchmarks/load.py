"""The load generator: events in through POST /api/v1/events with aiohttp, bounded concurrency.

Closed loop for throughput (at most `concurrency` requests open, and at most `max_backlog`
deliveries accepted but not yet received, so no org ever nears the 10,000-PENDING
backpressure limit); open loop at a fixed rate for latency.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aio_pika
import aiohttp
import orjson

from harness.broker import EventPublisher
from harness.receiver import ReceiverClient
from libs.domain.ids import IdPrefix, new_id
from libs.infra.broker.messages import EventMessage

PAD = "x" * 700  # an envelope of about 1 KB, like the ceilings' payload


def event_body(n: int) -> bytes:
    return orjson.dumps(
        {
            "type": "mapping.completed",
            "data": {"mappingJobId": f"job_{n}", "status": "COMPLETED", "rowCount": n, "note": PAD},
        }
    )


@dataclass
class Sent:
    """Every accepted event: (client send time, answer time, eventId); and the failures."""

    events: list[tuple[float, float, str]] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    late_starts: int = 0  # open loop: sends that started > 10 ms behind schedule

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


class ArrivalCounter:
    """Polls the receiver's /stats so the generator knows how many deliveries arrived."""

    def __init__(self, receiver: ReceiverClient) -> None:
        self._receiver = receiver
        self.counts: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> dict[str, int]:
        self.counts = await self._receiver.stats()
        return self.counts

    def start(self, interval_s: float = 0.2) -> ArrivalCounter:
        async def loop() -> None:
            while True:
                try:
                    await self.refresh()
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(interval_s)

        self._task = asyncio.create_task(loop())
        return self

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    def get(self, scenario: str) -> int:
        return self.counts.get(scenario, 0)


async def post_event(
    session: aiohttp.ClientSession, url: str, token: str, n: int, sent: Sent
) -> None:
    t_send = time.time()
    try:
        async with session.post(
            url,
            data=event_body(n),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ) as response:
            payload = await response.read()
            if response.status != 202:
                sent.error(f"HTTP {response.status}")
                return
        sent.events.append((t_send, time.time(), orjson.loads(payload)["eventId"]))
    except (aiohttp.ClientError, TimeoutError) as exc:
        sent.error(type(exc).__name__)


async def closed_loop(
    send_one: Callable[[int, Sent], Awaitable[None]],
    *,
    until: float,
    concurrency: int,
    fanout: int,
    arrivals: ArrivalCounter,
    scenario: str,
    max_backlog: int,
    sent: Sent,
) -> None:
    """`concurrency` senders back to back until `until`, pausing while more than
    `max_backlog` deliveries are accepted but not yet received (whatever door they use)."""
    counter = iter(range(10**9))
    base = arrivals.get(scenario)

    async def worker() -> None:
        while time.time() < until:
            if len(sent.events) * fanout - (arrivals.get(scenario) - base) > max_backlog:
                await asyncio.sleep(0.02)
                continue
            await send_one(next(counter), sent)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def http_sender(
    session: aiohttp.ClientSession, api_url: str, token: str
) -> Callable[[int, Sent], Awaitable[None]]:
    """Events through `POST /api/v1/events`."""
    url = f"{api_url}/api/v1/events"
    return functools.partial(post_event, session, url, token)


async def open_loop(
    session: aiohttp.ClientSession,
    api_url: str,
    token: str,
    *,
    rate_per_s: float,
    duration_s: float,
    max_open: int,
    sent: Sent,
) -> None:
    url = f"{api_url}/api/v1/events"
    window = asyncio.Semaphore(max_open)
    start = time.time()
    total = int(rate_per_s * duration_s)
    tasks: list[asyncio.Task[None]] = []

    async def one(n: int, due: float) -> None:
        async with window:
            if time.time() - due > 0.010:
                sent.late_starts += 1
            await post_event(session, url, token, n, sent)

    for n in range(total):
        due = start + n / rate_per_s
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*tasks)


class AmqpProducer:
    """The other front door: EventMessages published straight to `<prefix>.events`."""

    def __init__(self, amqp_url: str, prefix: str) -> None:
        self._publisher = EventPublisher(amqp_url, prefix)

    async def start(self) -> AmqpProducer:
        await self._publisher.start()
        return self

    async def close(self) -> None:
        await self._publisher.close()

    async def publish(self, organization_id: str, n: int, sent: Sent) -> None:
        event_id = new_id(IdPrefix.EVENT)
        message = EventMessage(
            id=event_id,
            organization_id=organization_id,
            type="mapping.completed",
            data=orjson.loads(event_body(n))["data"],
            created_at=datetime.now(UTC),
        )
        t_send = time.time()
        try:
            await self._publisher.publish(message)
        except aio_pika.exceptions.AMQPError as exc:
            sent.error(type(exc).__name__)
            return
        sent.events.append((t_send, time.time(), event_id))

    def sender(self, organization_id: str) -> Callable[[int, Sent], Awaitable[None]]:
        """Events published straight to `<prefix>.events` for one organization."""
        return functools.partial(self.publish, organization_id)

    async def publish_n(self, organization_id: str, count: int, concurrency: int = 64) -> Sent:
        sent = Sent()
        counter = iter(range(count))

        async def worker() -> None:
            for n in counter:
                await self.publish(organization_id, n, sent)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return sent
