"""The broker topology in one place: every exchange, queue and binding hookpost uses.

    events (topic) ──#──► <p>.dispatcher (quorum)
    deliveries (direct) ──send──► <p>.sender (quorum) ──reject──► dead ──delivery──► <p>.dead
    retry (direct) ──tier.<ms>──► <p>.retry.<ms>ms (quorum, TTL) ──expire──► deliveries/send

Every name carries HOOKPOST_BROKER_PREFIX so runs sharing one broker never meet, and the
scaled TTL is part of a tier's name so a test's 600 ms tier never clashes with the real 60 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

from libs.domain.retry_policy import RETRY_TIERS_S, scaled_ms

SEND_ROUTING_KEY = "send"
DEAD_DELIVERY_ROUTING_KEY = "delivery"
DEAD_EVENT_ROUTING_KEY = "event"
# A message that crashes its consumer this many times is dead-lettered, not looped forever.
POISON_DELIVERY_LIMIT = 20


def _dead_lettered_to(exchange: str, routing_key: str) -> dict[str, Any]:
    # at-least-once dead-lettering needs reject-publish overflow on quorum queues.
    return {
        "x-dead-letter-exchange": exchange,
        "x-dead-letter-routing-key": routing_key,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


@dataclass(frozen=True)
class Topology:
    prefix: str
    retry_delay_scale: float = 1.0

    def _exchange(self, name: str, kind: ExchangeType) -> RabbitExchange:
        return RabbitExchange(f"{self.prefix}.{name}", type=kind, durable=True)

    def _queue(
        self, name: str, routing_key: str, arguments: dict[str, Any] | None = None
    ) -> RabbitQueue:
        # Every queue is a quorum queue (replicated across a cluster's nodes).
        return RabbitQueue(
            f"{self.prefix}.{name}",
            queue_type=QueueType.QUORUM,
            routing_key=routing_key,
            arguments=arguments,
        )

    def _work_queue(self, name: str, routing_key: str, dead_key: str) -> RabbitQueue:
        """A consumer's queue: dead-lettered to `dead_key`, poison-limited."""
        dead_lettered = _dead_lettered_to(self.dead_exchange.name, dead_key)
        return self._queue(
            name, routing_key, {**dead_lettered, "x-delivery-limit": POISON_DELIVERY_LIMIT}
        )

    # exchanges
    @property
    def events_exchange(self) -> RabbitExchange:
        return self._exchange("events", ExchangeType.TOPIC)

    @property
    def deliveries_exchange(self) -> RabbitExchange:
        return self._exchange("deliveries", ExchangeType.DIRECT)

    @property
    def retry_exchange(self) -> RabbitExchange:
        return self._exchange("retry", ExchangeType.DIRECT)

    @property
    def dead_exchange(self) -> RabbitExchange:
        return self._exchange("dead", ExchangeType.DIRECT)

    # queues
    @property
    def dispatcher_queue(self) -> RabbitQueue:
        return self._work_queue("dispatcher", "#", DEAD_EVENT_ROUTING_KEY)

    @property
    def sender_queue(self) -> RabbitQueue:
        return self._work_queue("sender", SEND_ROUTING_KEY, DEAD_DELIVERY_ROUTING_KEY)

    @property
    def dead_deliveries_queue(self) -> RabbitQueue:
        return self._queue("dead", DEAD_DELIVERY_ROUTING_KEY)

    @property
    def dead_events_queue(self) -> RabbitQueue:
        """Events the dispatcher could not process: consumed into `poison_messages`."""
        return self._queue("dead.events", DEAD_EVENT_ROUTING_KEY)

    def retry_tier_ms(self, delay_s: int) -> int:
        return scaled_ms(delay_s, self.retry_delay_scale)

    def retry_routing_key(self, delay_s: int) -> str:
        return f"tier.{self.retry_tier_ms(delay_s)}"

    def retry_queue(self, delay_s: int) -> RabbitQueue:
        ttl_ms = self.retry_tier_ms(delay_s)
        expired = _dead_lettered_to(self.deliveries_exchange.name, SEND_ROUTING_KEY)
        return self._queue(
            f"retry.{ttl_ms}ms",
            self.retry_routing_key(delay_s),
            {**expired, "x-message-ttl": ttl_ms},
        )

    def retry_queues(self) -> list[RabbitQueue]:
        return [self.retry_queue(delay) for delay in RETRY_TIERS_S]

    def bindings(self) -> list[tuple[RabbitQueue, RabbitExchange]]:
        """Every queue with the exchange it is bound to (routing key on the queue)."""
        return [
            (self.dispatcher_queue, self.events_exchange),
            (self.sender_queue, self.deliveries_exchange),
            (self.dead_deliveries_queue, self.dead_exchange),
            (self.dead_events_queue, self.dead_exchange),
            *[(queue, self.retry_exchange) for queue in self.retry_queues()],
        ]


async def declare_topology(broker: Any, topology: Topology) -> None:
    """Declare every exchange, queue and binding (idempotent) on a connected RabbitBroker."""
    for queue, exchange in topology.bindings():
        declared_exchange = await broker.declare_exchange(exchange)
        declared_queue = await broker.declare_queue(queue)
        await declared_queue.bind(declared_exchange, routing_key=queue.routing())
