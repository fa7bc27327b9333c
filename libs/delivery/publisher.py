"""Publishes delivery steps: to the sender queue (`<prefix>.deliveries`), to a retry tier
(`<prefix>.retry`, whose TTL hands the step to the sender queue when it is due), or, for a
step deferred by its endpoint's limits, to the delay ladder (`<prefix>.defer.*`). Persistent,
mandatory and confirmed: every publish returns only once the broker has the message.

Straight on the broker's aio-pika exchanges (its channel has publisher confirms and raises
on returns): FastStream's `broker.publish` adds a producer, context scopes and middlewares
per message, more than the publish itself (BENCHMARKS.md). The trace context rides in the
headers like the attempt number: a tier keeps them when its TTL dead-letters the step back,
so the next attempt continues the same trace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aio_pika.abc import AbstractExchange
from faststream.rabbit import RabbitBroker, RabbitExchange

from libs.delivery.metrics import EngineMetrics
from libs.infra import telemetry
from libs.infra.broker import delay_ladder
from libs.infra.broker.messages import DeliveryStep
from libs.infra.broker.topology import SEND_ROUTING_KEY, Topology, declare_ladder


class StepPublisher:
    def __init__(self, broker: RabbitBroker, topology: Topology, metrics: EngineMetrics) -> None:
        self._broker = broker
        self._topology = topology
        self._metrics = metrics
        self._exchanges: dict[str, AbstractExchange] = {}
        self._ladder_lock = asyncio.Lock()
        self._ladder_ready = False

    async def publish_steps(self, steps: Sequence[DeliveryStep]) -> None:
        """To the sender queue; all of them sent back to back, their confirms awaited
        together (a fan-out of N waits for one confirm round, not N in a row)."""
        exchange = self._topology.deliveries_exchange
        await asyncio.gather(*(self._publish(exchange, SEND_ROUTING_KEY, s) for s in steps))

    async def publish_now(self, step: DeliveryStep) -> None:
        await self.publish_steps([step])

    async def publish_retry(
        self, step: DeliveryStep, delay_s: int, exact_wait_s: float | None = None
    ) -> None:
        """To the tier of `delay_s` (scaled by HOOKPOST_RETRY_DELAY_SCALE); with a receiver's
        own wait (`exact_wait_s`, a Retry-After), to the delay ladder for that long instead.
        Counted by `delay_s` either way."""
        if exact_wait_s is None:
            await self._publish_to_tier(step, delay_s)
        else:
            await self._publish_to_ladder(step, exact_wait_s, retry_tier_s=delay_s)
        self._metrics.retry_published(delay_s)

    async def publish_deferred(self, step: DeliveryStep, wait_s: float) -> None:
        """A step whose endpoint has no room yet (no attempt made), back after `wait_s`
        (within the delay ladder's resolution): paced steps (libs/delivery/limits.py) come
        back spread as they were given, and none waits behind a longer one."""
        await self._publish_to_ladder(step, wait_s)
        self._metrics.deferred()

    async def _publish_to_ladder(
        self, step: DeliveryStep, wait_s: float, **attributes: int
    ) -> None:
        await self._ladder_declared()
        routing_key = delay_ladder.routing_key(wait_s)
        exchange = self._topology.defer_entry
        await self._publish(exchange, routing_key, step, wait_s=round(wait_s, 3), **attributes)

    async def _publish_to_tier(self, step: DeliveryStep, delay_s: int) -> None:
        routing_key = self._topology.retry_routing_key(delay_s)
        await self._publish(self._topology.retry_exchange, routing_key, step, retry_tier_s=delay_s)

    async def _publish(
        self,
        exchange: RabbitExchange,
        routing_key: str,
        step: DeliveryStep,
        **attributes: float,
    ) -> None:
        target = await self._declared(exchange)
        with telemetry.producer_span(
            f"{exchange.name} publish",
            exchange.name,
            routing_key,
            delivery_id=step.task.delivery_id,
            endpoint_id=step.task.endpoint_id,
            next_attempt=step.attempt,
            **attributes,
        ) as trace_headers:
            await target.publish(step.message(trace_headers), routing_key, mandatory=True)

    async def _ladder_declared(self) -> None:
        """The delay ladder, declared at this publisher's first step for it (topology.py
        `declare_ladder`: why not at startup)."""
        if self._ladder_ready:
            return
        async with self._ladder_lock:
            if not self._ladder_ready:
                await declare_ladder(self._broker, self._topology)
                self._ladder_ready = True

    async def _declared(self, exchange: RabbitExchange) -> AbstractExchange:
        # A robust exchange on the broker's default channel: it survives reconnects.
        found = self._exchanges.get(exchange.name)
        if found is None:
            found = self._exchanges[exchange.name] = await self._broker.declare_exchange(exchange)
        return found
