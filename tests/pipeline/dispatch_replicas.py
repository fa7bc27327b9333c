"""What test_dispatch_batches.py drives and reads: dispatcher replicas in this process, the
statements each connection runs, the tasks they publish, and publishers that fail or lag."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
import asyncpg
from faststream.rabbit import RabbitBroker

from libs.delivery.metrics import EngineMetrics
from libs.delivery.publisher import StepPublisher
from libs.infra.broker.messages import (
    DeliveryStep,
    DeliveryTask,
)
from libs.infra.broker.topology import Topology
from libs.infra.settings import get_settings
from services.dispatcher.handler import Dispatcher, Publisher
from services.dispatcher.repository import DispatcherRepository

PENDING_LIMIT = 3  # a replica's default: low enough for the drop tests to reach

# What each dispatcher statement starts with or contains, to count them by step.
STEPS = {
    "prepare": "INSERT INTO events",
    "deliveries": "INSERT INTO deliveries",
    "drop": "INSERT INTO audit_log",
    "finish": "pg_advisory_xact_lock",  # mark dispatched + unlock
    "unlock": "pg_advisory_unlock_all",
}


def step_of(query: str) -> str:
    for step, marker in STEPS.items():
        if marker in query:
            return step
    if "typeinfo_tree" in query or "'jit'" in query:
        return "introspection"  # asyncpg, once per connection, on first use of jsonb[]
    return "other"


class StatementLog:
    """Every statement the worker pool's connections run (asyncpg's query logger)."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, tuple[Any, ...]]] = []

    def __call__(self, record: Any) -> None:
        self.queries.append((record.query, tuple(record.args or ())))

    def steps(self) -> Counter[str]:
        steps = (step_of(query) for query, _ in self.queries)
        return Counter(step for step in steps if step != "introspection")

    def waiting_prepares(self) -> int:
        # the prepare's $9 says whether it waits for the lock (one event alone)
        return sum(1 for query, args in self.queries if step_of(query) == "prepare" and args[8])

    def clear(self) -> None:
        self.queries.clear()


@dataclass
class Replica:
    """One dispatcher replica: its own worker pool (whose statements are logged)."""

    pool: asyncpg.Pool
    statements: StatementLog
    broker: tuple[RabbitBroker, Topology]
    pids: list[int]  # its connections' backends

    def dispatcher(
        self,
        wrap: Callable[[StepPublisher], Publisher] | None = None,
        pending_limit: int = PENDING_LIMIT,
    ) -> Dispatcher:
        """A Dispatcher on this replica's pool; `wrap` puts a fault around the real publisher."""
        publisher = StepPublisher(*self.broker, EngineMetrics("dispatcher"))
        dispatcher = Dispatcher(
            DispatcherRepository(self.pool),
            wrap(publisher) if wrap else publisher,
            pending_limit=pending_limit,
            payload_cap_bytes=get_settings().payload_cap_bytes,
        )
        self.dispatchers.append(dispatcher)
        return dispatcher

    def __post_init__(self) -> None:
        self.dispatchers: list[Dispatcher] = []


class Tasks:
    """The real sender queue of this test's topology: every task published to it."""

    def __init__(self, channel: aio_pika.abc.AbstractChannel, queue_name: str) -> None:
        self._channel = channel
        self._queue_name = queue_name

    async def take_all(self, settle_s: float = 0.3) -> list[DeliveryTask]:
        await asyncio.sleep(settle_s)  # confirmed publishes are in the queue; be generous
        queue = await self._channel.get_queue(self._queue_name)
        found = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            found.append(DeliveryTask.model_validate_json(message.body))
        return found


class FlakyPublisher:
    """The real publisher, except that the last task of one event is never confirmed."""

    def __init__(self, real: StepPublisher, failing_event_id: str) -> None:
        self._real = real
        self.failing_event_id = failing_event_id

    async def publish_steps(self, steps: Sequence[DeliveryStep]) -> None:
        if steps and steps[0].task.event_id == self.failing_event_id:
            await self._real.publish_steps(steps[:-1])
            raise ConnectionError("the broker never confirmed the last task")
        await self._real.publish_steps(steps)


class SlowPublisher:
    """The real publisher, after a pause: the batch holds its locks a while (a slow broker)."""

    def __init__(self, real: StepPublisher, delay_s: float) -> None:
        self._real = real
        self._delay_s = delay_s

    async def publish_steps(self, steps: Sequence[DeliveryStep]) -> None:
        await asyncio.sleep(self._delay_s)
        await self._real.publish_steps(steps)
