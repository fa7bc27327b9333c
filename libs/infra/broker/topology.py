"""The broker topology in one place: every exchange, queue and binding hookpost uses.

    events (topic) ──#──► <p>.dispatcher (quorum)
    deliveries (direct) ──send──► <p>.sender (quorum) ──reject──► dead ──delivery──► <p>.dead
    retry (direct) ──tier.<ms>──► <p>.retry.<ms>ms (quorum, TTL) ──expire──► deliveries/send
    defer (topic) ──first set bit j──► <p>.defer.<j>.<ms>ms (quorum, TTL) ──► defer.after.<j>
    defer.after.<j> ──next set bit i──► <p>.defer.<i>.<ms>ms … ──► <p>.defer.0.<ms>ms
    <p>.defer.0.<ms>ms (quorum, TTL) ──expire──► deliveries/send

A deferred step (its endpoint had no room) or a receiver's Retry-After waits in the delay
ladder (delay_ladder.py): one TTL per queue, so none waits behind a longer one; declared at a
service's first deferral (`declare_ladder`). A failed attempt waits in its retry tier.

With HOOKPOST_SENDER_SHARDS=N > 1 the work queue is N quorum queues (N Raft leaders, spread
over the cluster's nodes), behind a consistent-hash exchange on the endpoint header:

    deliveries ──send──► <p>.deliveries.shards (x-consistent-hash) ──► <p>.sender.0 … N-1

Every publisher, the retry tiers' dead-lettering and the api keep publishing to
deliveries/send; the header every step carries (messages.ENDPOINT_HEADER) picks the shard, so
one endpoint's steps share a queue and a retry comes back to its own. `<p>.sender` is then
unbound and only drained (a switch from 1 to N loses and doubles nothing). Why a plugin
rather than routing keys the publisher computes: docs/operations.md "Sharded work queues".

Every name carries HOOKPOST_BROKER_PREFIX so runs sharing one broker never meet, and the
scaled TTL is part of a tier's name so a test's 600 ms tier never clashes with the real 60 s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

from libs.domain.retry_policy import RETRY_TIERS_S, scaled_ms
from libs.infra.broker import delay_ladder
from libs.infra.broker.messages import ENDPOINT_HEADER
from libs.infra.settings import Settings

SEND_ROUTING_KEY = "send"
DEAD_DELIVERY_ROUTING_KEY = "delivery"
DEAD_EVENT_ROUTING_KEY = "event"
# A message that crashes its consumer this many times is dead-lettered, not looped forever.
POISON_DELIVERY_LIMIT = 20
# A shard's binding key is its weight on the hash ring: equal shares.
SHARD_WEIGHT = "1"


def _dead_lettered_to(exchange: str, routing_key: str | None = None) -> dict[str, Any]:
    """Without `routing_key` a message keeps its own (the delay ladder's bits)."""
    # at-least-once dead-lettering needs reject-publish overflow on quorum queues.
    keyed = {"x-dead-letter-routing-key": routing_key} if routing_key else {}
    return {
        "x-dead-letter-exchange": exchange,
        **keyed,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


@dataclass(frozen=True)
class Topology:
    prefix: str
    retry_delay_scale: float = 1.0
    sender_shards: int = 1

    @classmethod
    def of(cls, settings: Settings) -> Topology:
        """The topology every service of one deployment declares alike."""
        return cls(settings.broker_prefix, settings.retry_delay_scale, settings.sender_shards)

    @property
    def sharded(self) -> bool:
        return self.sender_shards > 1

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

    @property
    def shards_exchange(self) -> RabbitExchange:
        """Bound to deliveries/send: every step published there is hashed to one shard."""
        return RabbitExchange(
            f"{self.prefix}.deliveries.shards",
            type=ExchangeType.X_CONSISTENT_HASH,
            durable=True,
            arguments={"hash-header": ENDPOINT_HEADER},
            bind_to=self.deliveries_exchange,
            routing_key=SEND_ROUTING_KEY,
        )

    @property
    def work_exchange(self) -> RabbitExchange:
        """Where the sender queues are bound."""
        return self.shards_exchange if self.sharded else self.deliveries_exchange

    # queues
    @property
    def dispatcher_queue(self) -> RabbitQueue:
        return self._work_queue("dispatcher", "#", DEAD_EVENT_ROUTING_KEY)

    @property
    def sender_queue(self) -> RabbitQueue:
        """The one work queue; sharded, the queue every sender drains and nothing feeds."""
        return self._work_queue("sender", SEND_ROUTING_KEY, DEAD_DELIVERY_ROUTING_KEY)

    def shard_queue(self, shard: int) -> RabbitQueue:
        return self._work_queue(f"sender.{shard}", SHARD_WEIGHT, DEAD_DELIVERY_ROUTING_KEY)

    @property
    def sender_queues_pattern(self) -> str:
        """A regex matching `<p>.sender` and any shard of it: what the autoscaler sums."""
        return rf"^{re.escape(self.prefix)}\.sender(\.[0-9]+)?$"

    @property
    def sender_queues(self) -> list[RabbitQueue]:
        """The queues steps are routed to: `<p>.sender`, or the N shards."""
        if not self.sharded:
            return [self.sender_queue]
        return [self.shard_queue(k) for k in range(self.sender_shards)]

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

    # the delay ladder (delay_ladder.py)
    def defer_exchange(self, after: int) -> RabbitExchange:
        """Where a step goes after level `after`'s queue; `after` = LEVELS + 1: the entry."""
        name = "defer" if after > delay_ladder.LEVELS else f"defer.after.{after}"
        return self._exchange(name, ExchangeType.TOPIC)

    @property
    def defer_entry(self) -> RabbitExchange:
        """Where a deferred step is published, keyed by `delay_ladder.routing_key`."""
        return self.defer_exchange(delay_ladder.LEVELS + 1)

    def defer_queue(self, level: int, after: int | None = None) -> RabbitQueue:
        """Level `level`'s queue, bound (`after` given) to the exchange after level `after`."""
        ttl_ms = scaled_ms(delay_ladder.level_wait_s(level), self.retry_delay_scale)
        if level == 0:
            expired = _dead_lettered_to(self.deliveries_exchange.name, SEND_ROUTING_KEY)
        else:
            expired = _dead_lettered_to(self.defer_exchange(level).name)
        pattern = delay_ladder.binding(after, level) if after is not None else ""
        return self._queue(
            f"defer.{level}.{ttl_ms}ms", pattern, {**expired, "x-message-ttl": ttl_ms}
        )

    def defer_queues(self) -> list[RabbitQueue]:
        return [self.defer_queue(level) for level in range(delay_ladder.LEVELS, -1, -1)]

    def ladder_bindings(self) -> list[tuple[RabbitQueue, RabbitExchange]]:
        """The delay ladder's queues and bindings: declared by `declare_ladder` when a
        service first defers a step, not with the rest (see `declare_ladder`)."""
        top = delay_ladder.LEVELS + 1
        return [
            (self.defer_queue(level, after), self.defer_exchange(after))
            for after in range(top, 0, -1)
            for level in range(after - 1, -1, -1)
        ]

    def bindings(self) -> list[tuple[RabbitQueue, RabbitExchange]]:
        """Every queue with the exchange it is bound to (routing key on the queue), but the
        delay ladder's (`ladder_bindings`)."""
        return [
            (self.dispatcher_queue, self.events_exchange),
            *[(queue, self.work_exchange) for queue in self.sender_queues],
            (self.dead_deliveries_queue, self.dead_exchange),
            (self.dead_events_queue, self.dead_exchange),
            *[(queue, self.retry_exchange) for queue in self.retry_queues()],
        ]

    def every_binding(self) -> list[tuple[RabbitQueue, RabbitExchange]]:
        """`bindings` and the ladder's: everything a deployment may have declared."""
        return self.bindings() + self.ladder_bindings()


async def declare_topology(broker: Any, topology: Topology) -> None:
    """Declare every exchange, queue and binding (idempotent) on a connected RabbitBroker.
    Sharded, `<p>.sender` is unbound: what it holds is drained, nothing new reaches it (it
    is declared first, so that the unbind has a queue to act on)."""
    await _declare(broker, topology.bindings())
    if topology.sharded:
        legacy = await broker.declare_queue(topology.sender_queue)
        deliveries = await broker.declare_exchange(topology.deliveries_exchange)
        await legacy.unbind(deliveries, routing_key=SEND_ROUTING_KEY)


async def declare_ladder(broker: Any, topology: Topology) -> None:
    """Declare the delay ladder (idempotent). Only a service that defers a step needs it, and
    its 16 quorum queues hold about 3 of RabbitMQ's file handles each (of 927 on a broker
    left at 1,024 file descriptors): declared with the rest, a test suite's stacks used up
    the broker's handles, and it stopped accepting connections."""
    await _declare(broker, topology.ladder_bindings())


async def _declare(broker: Any, bindings: list[tuple[RabbitQueue, RabbitExchange]]) -> None:
    """Each exchange and queue, and the queue bound to the exchange by its routing key."""
    for queue, exchange in bindings:
        # FastStream binds an exchange to its `bind_to` when it declares it (the shards').
        declared_exchange = await broker.declare_exchange(exchange)
        declared_queue = await broker.declare_queue(queue)
        await declared_queue.bind(declared_exchange, routing_key=queue.routing())
