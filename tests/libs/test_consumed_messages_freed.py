"""A consumed message is freed as soon as it is settled, by reference counting alone, on the
real RabbitMQ: no cycle keeps it for the collector. A message held for a slow endpoint's POST
lives long enough to reach the middle generation, whose collections stop the loop for as long
as walking every request in flight takes (libs/infra/heap.py)."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from collections.abc import Iterator

import aio_pika
import pytest
from faststream.rabbit.annotations import RabbitMessage

from harness.waiting import eventually
from libs.infra.settings import get_settings
from libs.worker.consumers import Verdict
from libs.worker.runtime import build_broker
from tests.support.queues import consuming, publish

COUNT = 5


@pytest.fixture
def no_collections() -> Iterator[None]:
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.mark.usefixtures("no_collections")
async def test_a_settled_message_is_freed_without_a_collection(
    test_env: dict[str, str], queue_name: str
) -> None:
    handled: list[weakref.ref[RabbitMessage]] = []

    async def handle(message: RabbitMessage) -> Verdict:
        handled.append(weakref.ref(message))
        return Verdict.ACK

    broker = build_broker(get_settings(), prefetch=COUNT)  # the services' own
    await consuming(broker, queue_name, handle)
    try:
        messages = (
            aio_pika.Message(json.dumps({"n": n}).encode(), content_type="application/json")
            for n in range(COUNT)
        )
        await publish(test_env["HOOKPOST_AMQP_URL"], queue_name, messages)
        await eventually(lambda: asyncio.sleep(0, len(handled)), lambda n: n == COUNT, timeout=10)
        # Settled messages still alive (a cycle would keep them until a collection). The
        # latest one's context lives on in a task its handling started, until the next.
        await eventually(
            lambda: asyncio.sleep(0, sum(ref() is not None for ref in handled[:-1])),
            lambda alive: alive == 0,
            timeout=5,
        )
    finally:
        await broker.stop()
