"""How a worker takes messages from its queues: consume, settle, and stop taking them while
PostgreSQL is unreachable.

A message that failed because PostgreSQL did not answer is not handed back to the queue at
once: a redelivery would fail again at once, and every return counts against the queue's
delivery limit (libs/infra/broker/topology.py), so a long outage would dead-letter live work.
Instead the worker pauses (`ConsumerPause`): it cancels its consumers, so the broker keeps
new messages for replicas that can reach the database (or holds them), keeps the messages it
already has, and once PostgreSQL answers again it consumes again and hands those back, each
once. A poison message is then one that fails while the database answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

import asyncpg
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage
from prometheus_client import Counter, Gauge

from libs.infra import telemetry

DEAD_LETTER_PREFETCH = 32  # messages a dead-letter consumer holds unsettled at once
log = logging.getLogger("hookpost.worker")

PAUSED = Gauge(
    "hookpost_worker_consuming_paused",
    "1 while this worker takes no messages because PostgreSQL does not answer.",
)
PAUSES = Counter(
    "hookpost_worker_pauses_total", "Times this worker stopped consuming for the database."
)


class Verdict(StrEnum):
    """What a handler decided about its message; `settle` carries it out."""

    ACK = "ack"  # done (delivered, dispatched, duplicate or dropped)
    REJECT = "reject"  # can never succeed here: dead-letter it
    REQUEUE = "requeue"  # Postgres or the broker failed mid-way: let the broker redeliver it


MessageHandler = Callable[[RabbitMessage], Awaitable[Verdict]]
# A requeue while the database answers (the broker failed mid-way) waits this long first,
# so that a message failing for the broker does not spin.
REQUEUE_BACKOFF_S = 0.5


async def database_answers(pool: asyncpg.Pool, timeout_s: float = 2.0) -> bool:
    try:
        return await asyncio.wait_for(pool.fetchval("SELECT 1"), timeout_s) == 1
    except Exception:
        return False


class ConsumerPause:
    """One per worker process: `hold()` returns once the database answers, pausing the
    worker's consumers in between (see the top)."""

    def __init__(self, broker: RabbitBroker, pool: asyncpg.Pool, probe_every_s: float = 1.0):
        self._broker = broker
        self._pool = pool
        self._probe_every_s = probe_every_s
        self._answers = asyncio.Event()
        self._answers.set()
        self._watch: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def paused(self) -> bool:
        return not self._answers.is_set()

    async def hold(self) -> None:
        """Before a message goes back to its queue: wait while PostgreSQL does not answer."""
        if not self.paused and await database_answers(self._pool):
            await asyncio.sleep(REQUEUE_BACKOFF_S)
            return
        if not self.paused and not self._closed:
            self._answers.clear()
            self._watch = asyncio.create_task(self._until_the_database_answers())
        await self._answers.wait()

    async def close(self) -> None:
        """On shutdown: let every held message go (its channel closes and returns it)."""
        self._closed = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        self._answers.set()

    async def _until_the_database_answers(self) -> None:
        PAUSES.inc()
        PAUSED.set(1)
        log.warning("database unreachable: consuming paused until it answers")
        try:
            await stop_consuming(self._broker)
            while not await database_answers(self._pool):  # noqa: ASYNC110 (polling a server)
                await asyncio.sleep(self._probe_every_s)
            await resume_consuming(self._broker)
            log.info("database answers again: consuming resumed")
        finally:
            PAUSED.set(0)
            self._answers.set()


class AckRuns:
    """The acks of one channel, coalesced: those settled in the same loop turn go out as one
    `basic.ack(multiple=True)` when every delivery tag up to the highest of them is settled.

    Delivery tags count a channel's deliveries from 1. `through` is the highest tag T such
    that every tag up to T has been settled here (acked, rejected or requeued): a multiple
    ack up to a tag ≤ T can only cover messages this process is done with (one rejected or
    acked before is no longer outstanding at the broker, which skips it). An ack above T (a
    message below it still in flight, or delivered and not yet handed to us) goes alone.
    The frames go out one after the other, in the order decided: a multiple ack written
    before the single ack of a tag it covers would make that one unknown to the broker,
    which closes the channel. One frame instead of one per message (BENCHMARKS.md, issue 21).
    """

    def __init__(self) -> None:
        self.through = 0
        self._settled: set[int] = set()  # tags above `through` settled here
        self._waiting: list[tuple[Any, asyncio.Future[None]]] = []  # (aio-pika message, done)
        # Frames to write, in order: (message, multiple, the acks it settles).
        self._frames: deque[tuple[Any, bool, list[asyncio.Future[None]]]] = deque()
        self._writer: asyncio.Task[None] | None = None

    def settled(self, tag: int) -> None:
        self._settled.add(tag)
        while self.through + 1 in self._settled:
            self.through += 1
            self._settled.discard(self.through)

    async def ack(self, raw: Any) -> None:
        """Acknowledge `raw` (an aio-pika IncomingMessage of this channel) on the next turn."""
        done = asyncio.get_running_loop().create_future()
        if not self._waiting:
            asyncio.get_running_loop().call_soon(self._flush)
        self._waiting.append((raw, done))
        await done

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        for raw, _ in waiting:
            self.settled(raw.delivery_tag)
        covered = [(raw, done) for raw, done in waiting if raw.delivery_tag <= self.through]
        if covered:
            last = max(covered, key=lambda pair: pair[0].delivery_tag)[0]
            self._frames.append((last, len(covered) > 1, [done for _, done in covered]))
        for raw, done in waiting:
            if raw.delivery_tag > self.through:
                self._frames.append((raw, False, [done]))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        while self._frames:
            raw, multiple, settles = self._frames.popleft()
            try:
                await raw.ack(multiple=multiple)
            except Exception as exc:
                for done in settles:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for done in settles:
                    if not done.done():
                        done.set_result(None)


# Per AMQP channel (a reconnect makes a new one, whose tags start again at 1).
_RUNS: weakref.WeakKeyDictionary[Any, AckRuns] = weakref.WeakKeyDictionary()


def ack_runs(channel: Any) -> AckRuns:
    runs = _RUNS.get(channel)
    if runs is None:
        runs = _RUNS[channel] = AckRuns()
    return runs


async def settle(message: RabbitMessage, verdict: Verdict, pause: ConsumerPause) -> None:
    if verdict is Verdict.REQUEUE:
        await pause.hold()
    raw = message.raw_message
    try:
        runs = ack_runs(raw.channel)  # raises once the channel is closed
        if verdict is Verdict.ACK:
            await runs.ack(raw)
            return
        if verdict is Verdict.REJECT:
            await message.reject(requeue=False)
        else:
            await message.nack(requeue=True)
        # Only once its frame is written: a multiple ack sent before it would ack it (a
        # requeued or dead-lettered message lost). Frames of one channel arrive in order.
        runs.settled(raw.delivery_tag)
    except Exception:
        # The channel is gone: the broker redelivers the message, which is safe.
        log.warning("could not settle a message", extra={"verdict": verdict.value}, exc_info=True)


def consume(
    broker: RabbitBroker,
    queue: RabbitQueue,
    exchange: RabbitExchange,
    handle: MessageHandler,
    pause: ConsumerPause,
    *,
    in_flight: Gauge | None = None,
    channel: Channel | None = None,
) -> None:
    """Subscribe `handle` to `queue` with manual acks: each message is handled in its own
    consumer span (continuing the trace its headers carry), counted in `in_flight`, and
    settled as `handle` says. `channel`: a channel of its own (another prefetch)."""
    name = queue.name  # a property that builds a RabbitQueue per access: read it once
    span_name = f"{name} process"

    @broker.subscriber(queue, exchange, channel=channel, ack_policy=AckPolicy.MANUAL)
    async def on_message(message: RabbitMessage) -> None:
        try:
            with (
                in_flight.track_inprogress() if in_flight is not None else contextlib.nullcontext(),
                telemetry.consumer_span(span_name, message.headers, name),
            ):
                await settle(message, await handle(message), pause)
        finally:
            # FastStream caches the message in its own decode cache: a cycle, freed only by
            # a collection of whichever generation the message has reached. A message held
            # for a slow endpoint's POST reaches the middle one (BENCHMARKS.md, "Session 18").
            message.clear_cache()


def consume_dead_letters(
    broker: RabbitBroker,
    queue: RabbitQueue,
    exchange: RabbitExchange,
    handle: MessageHandler,
    pause: ConsumerPause,
) -> None:
    """`consume` for a dead-letter queue: on a channel of its own, so that its prefetch
    (DEAD_LETTER_PREFETCH) is apart from the main queue's."""
    channel = Channel(prefetch_count=DEAD_LETTER_PREFETCH, global_qos=False)
    consume(broker, queue, exchange, handle, pause, channel=channel)


async def stop_consuming(broker: RabbitBroker) -> None:
    """basic.cancel every consumer, so no new message arrives while in-flight ones finish.

    FastStream's own stop waits for running handlers first and cancels afterwards, so the
    broker would keep handing this replica messages (held unprocessed until the channel
    closes) for the whole grace period; cancelling first sends them to other replicas.
    Reads FastStream 0.7's private consumer fields, defensively: an upgrade may move them.
    """
    for subscriber in broker.subscribers:
        queue = getattr(subscriber, "_queue_obj", None)
        tag = getattr(subscriber, "_consumer_tag", None)
        if queue is None or tag is None:
            continue
        try:
            await queue.cancel(tag)
            subscriber._consumer_tag = None  # FastStream's stop must not cancel it again
        except Exception:
            log.warning("could not cancel a consumer", exc_info=True)


async def resume_consuming(broker: RabbitBroker) -> None:
    """basic.consume again on every queue `stop_consuming` cancelled (same private fields;
    manual acks, as `consume` subscribes)."""
    for subscriber in broker.subscribers:
        queue = getattr(subscriber, "_queue_obj", None)
        if queue is None or getattr(subscriber, "_consumer_tag", None) is not None:
            continue
        subscriber._consumer_tag = await queue.consume(
            subscriber.consume, no_ack=False, arguments=subscriber.consume_args
        )
