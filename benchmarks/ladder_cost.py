"""`python -m benchmarks.ladder_cost [STEPS]`: what a deferred step costs the broker, in the
delay ladder (libs/infra/broker/delay_ladder.py) against one hop through a retry tier.

Each round declares a fresh topology (scale 1), publishes STEPS steps of one wait with
confirms, consumes them from the work queue as they come back, and reads the broker's own
CPU time (beam.smp, /proc) around it. The variants run interleaved, twice each, so the
shared machine's drift falls on both alike. The retry tier's hop is the cost floor: one TTL
queue, one dead-lettering, as a deferral cost before the ladder.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass

import aio_pika
import psutil
from faststream.rabbit import RabbitBroker

from benchmarks.common import ack_all
from harness.broker import delete_broker_objects
from libs.infra.broker import delay_ladder
from libs.infra.broker.topology import Topology, declare_topology
from libs.infra.settings import get_settings

BODY = b"x" * 600  # about a delivery task's size
WAVE = 100  # publishes in flight at once


@dataclass(frozen=True)
class Variant:
    name: str
    wait_s: float
    ladder: bool


VARIANTS = (
    Variant("retry tier, 1 hop", 1.3, ladder=False),
    Variant("ladder 0.1 s (1 hop)", 0.1, ladder=True),
    Variant("ladder 1.3 s (3 hops)", 1.3, ladder=True),
    Variant("ladder 13.7 s (6 hops)", 13.7, ladder=True),
)


def _broker_cpu_s() -> float:
    beams = [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("beam")]
    if not beams:
        raise SystemExit("no beam.smp process: is RabbitMQ running on this machine?")
    return sum(p.cpu_times().user + p.cpu_times().system for p in beams)


async def _round(url: str, variant: Variant, steps: int) -> float:
    """The broker's CPU milliseconds per step."""
    prefix = f"ladder_cost_{uuid.uuid4().hex[:6]}"
    topology = Topology(prefix)
    broker = RabbitBroker(url)
    await broker.connect()
    await declare_topology(broker, topology)
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        if variant.ladder:
            exchange = await channel.get_exchange(topology.defer_entry.name)
            key, expiration = delay_ladder.routing_key(variant.wait_s), None
        else:  # as deferrals went before the ladder: the 5 s tier, a per-message TTL
            exchange = await channel.get_exchange(topology.retry_exchange.name)
            key, expiration = topology.retry_routing_key(5), variant.wait_s
        await channel.set_qos(prefetch_count=500)
        all_back = await ack_all(await channel.get_queue(topology.sender_queue.name), steps)
        before = _broker_cpu_s()
        for _ in range(0, steps, WAVE):
            message = aio_pika.Message(BODY, delivery_mode=2, expiration=expiration)
            await asyncio.gather(*(exchange.publish(message, key) for _ in range(WAVE)))
        await asyncio.wait_for(all_back.wait(), timeout=variant.wait_s + 120)
        return (_broker_cpu_s() - before) * 1000 / steps
    finally:
        await connection.close()
        await broker.stop()
        await delete_broker_objects(url, prefix, [1.0])


async def main(steps: int) -> None:
    url = get_settings().amqp_url
    results: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
    for _ in range(2):
        for variant in VARIANTS:
            started = time.monotonic()
            results[variant.name].append(await _round(url, variant, steps))
            print(
                f"  {variant.name}: {results[variant.name][-1]:.3f} ms "
                f"({time.monotonic() - started:.1f} s)",
                file=sys.stderr,
            )
    print(f"broker CPU per deferred step, {steps} steps per round, 2 rounds interleaved:")
    for name, values in results.items():
        print(f"  {name:26} {' / '.join(f'{v:.3f}' for v in values)} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))
