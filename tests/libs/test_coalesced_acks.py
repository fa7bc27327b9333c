"""Acks settled together go out as one basic.ack(multiple=True), on the real RabbitMQ, and
never cover a message still in flight or one rejected."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aio_pika
import aiormq
import pytest
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from harness.waiting import eventually
from libs.worker.consumers import AckRuns, Verdict
from tests.support.queues import consuming, publish

COUNT = 20
HELD, REJECTED = 4, 9  # message numbers: one never settled, one dead-lettered (dropped)


@pytest.fixture
def ack_frames(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Every basic.ack sent, (delivery tag, multiple); the real method still sends it."""
    sent: list[tuple[int, bool]] = []
    real = aiormq.Channel.basic_ack

    async def counted(self: Any, delivery_tag: int, multiple: bool = False, **kw: Any) -> None:
        sent.append((delivery_tag, multiple))
        await real(self, delivery_tag, multiple=multiple, **kw)

    monkeypatch.setattr(aiormq.Channel, "basic_ack", counted)
    return sent


async def test_settled_acks_go_as_one_frame_and_spare_the_message_in_flight(
    test_env: dict[str, str], queue_name: str, ack_frames: list[tuple[int, bool]]
) -> None:
    arrived: set[int] = set()
    everyone_here, never = asyncio.Event(), asyncio.Event()

    async def handle(message: RabbitMessage) -> Verdict:
        number = int(message.body)
        arrived.add(number)
        if len(arrived) == COUNT:
            everyone_here.set()
        await everyone_here.wait()  # all settle in the same turn
        if number == HELD:
            await never.wait()  # in flight until the connection closes
        return Verdict.REJECT if number == REJECTED else Verdict.ACK

    broker = RabbitBroker(test_env["HOOKPOST_AMQP_URL"], graceful_timeout=0.5)
    await consuming(broker, queue_name, handle)
    try:
        messages = (aio_pika.Message(str(n).encode()) for n in range(COUNT))
        await publish(test_env["HOOKPOST_AMQP_URL"], queue_name, messages)
        # Tags follow the publish order here (one consumer): HELD's tag is HELD + 1.
        # Below it one multiple ack; above it, where it is still open, one frame each.
        alone = [(n + 1, False) for n in range(HELD + 1, COUNT) if n != REJECTED]

        async def frames() -> int:
            return len(ack_frames)

        await eventually(frames, lambda sent: sent >= 1 + len(alone), timeout=10)
    finally:
        await broker.stop()  # HELD was never settled: it goes back to the queue
    assert ack_frames[0] == (HELD, True)
    assert sorted(ack_frames[1:]) == alone
    connection = await aio_pika.connect(test_env["HOOKPOST_AMQP_URL"])
    async with connection:
        channel = await connection.channel()
        left = await channel.declare_queue(queue_name, durable=True, passive=True)
        back = await left.get(fail=False)
        assert back is not None and int(back.body) == HELD and back.redelivered
        await back.ack()
        assert await left.get(fail=False) is None  # every other one acked or dropped


class Raw:
    def __init__(self, tag: int) -> None:
        self.delivery_tag = tag
        self.acks: list[bool] = []

    async def ack(self, multiple: bool = False) -> None:
        self.acks.append(multiple)


async def test_a_run_waits_for_the_tags_below_it() -> None:
    runs = AckRuns()
    one, two, three = Raw(1), Raw(2), Raw(3)
    await asyncio.gather(runs.ack(two), runs.ack(three))  # 1 is in flight
    assert (two.acks, three.acks, runs.through) == ([False], [False], 0)
    runs.settled(1)  # rejected, say: now 1-3 are settled, and later ones may run
    assert runs.through == 3
    four, five = Raw(4), Raw(5)
    await asyncio.gather(runs.ack(four), runs.ack(five))
    assert (four.acks, five.acks, runs.through) == ([], [True], 5)
    assert one.acks == []


class Channel:
    """RabbitMQ's side of acks, as its channel keeps them: a tag acked (alone or as the top
    of a multiple ack) must still be outstanding, or the broker closes the channel."""

    def __init__(self, tags: int) -> None:
        self.outstanding = set(range(1, tags + 1))
        self.unknown: list[int] = []

    def ack(self, tag: int, multiple: bool) -> None:
        if tag not in self.outstanding:
            self.unknown.append(tag)
        elif multiple:
            self.outstanding -= {t for t in self.outstanding if t <= tag}
        else:
            self.outstanding.discard(tag)


class Delivered:
    def __init__(self, channel: Channel, tag: int, rng: random.Random) -> None:
        self.channel, self.delivery_tag, self.rng = channel, tag, rng

    async def ack(self, multiple: bool = False) -> None:
        await asyncio.sleep(self.rng.random() / 1000)  # frames take their time to write
        self.channel.ack(self.delivery_tag, multiple)


@pytest.mark.parametrize("seed", range(20))
async def test_messages_settled_in_any_order_are_each_acked_once_and_never_early(
    seed: int,
) -> None:
    rng, channel, runs = random.Random(seed), Channel(200), AckRuns()

    async def handle(tag: int) -> None:
        await asyncio.sleep(rng.random() / 100)
        assert tag in channel.outstanding, f"tag {tag} acked while in flight"
        if rng.random() < 0.1:  # rejected or requeued: its own frame, then settled
            channel.outstanding.discard(tag)
            runs.settled(tag)
        else:
            await runs.ack(Delivered(channel, tag, rng))

    await asyncio.gather(*(handle(tag) for tag in range(1, 201)))
    assert channel.unknown == [] and channel.outstanding == set()
