"""Phase `sharded`: the sender work queue split in N quorum queues behind the consistent-hash
exchange (HOOKPOST_SENDER_SHARDS, libs/infra/broker/topology.py), on this machine's broker.

The same fan-out traffic (AMQP producers, fan-out 10 over 4 orgs: 40 endpoints, so that
every shard is hashed some) runs twice, each time through a dispatcher and two senders of
their own on a prefix of their own: once unsharded (N=1), once with N=4. Every first attempt
goes through the work queues (HOOKPOST_DISPATCHER_FIRST_ATTEMPTS=0), or the shards would
carry only retries. Each run reports its deliveries/s, CPU per 1,000 deliveries, the tasks
each work queue handed the senders (their `hookpost_sender_tasks_total{queue}`), and whether
every delivery arrived exactly once.

On one node with 2 cores N=4 is not expected to be faster: the shards' point is N Raft
leaders spread over a cluster's nodes (docs/operations.md "Sizing"). The phase shows the
topology working and what it costs here.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from benchmarks import load
from benchmarks.common import log, sleep_until
from benchmarks.config import CONCURRENCY, FANOUT, MAX_BACKLOG, WARMUP_S
from benchmarks.measure import cpu_report, snapshot
from benchmarks.rig import Pipeline, subscribe
from harness.broker import delete_broker_objects
from harness.metrics import sample
from harness.orgs import create_orgs
from harness.stack import Stack
from libs.infra.broker.topology import Topology

SHARDS = 4
SCENARIO = "sharded"
ORGS = [f"{SCENARIO}-{n}" for n in range(4)]  # × FANOUT subscriptions each
WINDOW_S = float(os.environ.get("BENCH_SHARDED_S", 20))


@dataclass
class ShardRun:
    shards: int
    deliveries_per_s: float
    deliveries_in_window: int
    events_sent: int
    deliveries_expected: int
    deliveries_arrived: int
    duplicate_posts: int
    lost: int
    tasks_by_queue: dict[str, int]  # what each work queue handed the senders
    cpu_s_per_1000_deliveries: dict[str, float]


@dataclass
class ShardedResult:
    unsharded: ShardRun
    sharded: ShardRun
    ratio: float  # sharded dps / unsharded dps, same traffic, same machine
    every_shard_carried_work: bool
    all_arrived_once: bool


async def measure(pipe: Pipeline) -> ShardedResult:
    rig = pipe.rig
    orgs = await create_orgs(pipe.stack.env, ORGS)
    for org in orgs.values():
        await subscribe(rig, pipe.api_url, org["apiToken"], SCENARIO, FANOUT)
    org_ids = [org["organizationId"] for org in orgs.values()]
    one = await _run(pipe, org_ids, 1)
    many = await _run(pipe, org_ids, SHARDS)
    shards = [q.name for q in _topology(pipe, SHARDS).sender_queues]
    return ShardedResult(
        unsharded=one,
        sharded=many,
        ratio=round(many.deliveries_per_s / one.deliveries_per_s, 2),
        every_shard_carried_work=all(many.tasks_by_queue.get(q, 0) > 0 for q in shards),
        all_arrived_once=all(r.lost == 0 and r.duplicate_posts == 0 for r in (one, many)),
    )


def _topology(pipe: Pipeline, shards: int) -> Topology:
    scale = float(pipe.stack.env.get("HOOKPOST_RETRY_DELAY_SCALE", 1.0))
    return Topology(f"{pipe.rig.env.name}_sh{shards}", scale, shards)


async def _run(pipe: Pipeline, org_ids: list[str], shards: int) -> ShardRun:
    rig, topology = pipe.rig, _topology(pipe, shards)
    log(f"sharded: {shards} work queue(s), fan-out {FANOUT}, {WINDOW_S:g} s")
    logs = rig.run.logs / f"sharded-{shards}"
    logs.mkdir(exist_ok=True)
    env = rig.env.env(
        HOOKPOST_BROKER_PREFIX=topology.prefix,
        HOOKPOST_SENDER_SHARDS=str(shards),
        HOOKPOST_DISPATCHER_FIRST_ATTEMPTS="0",
    )
    stack = Stack(env, logs)
    producer = load.AmqpProducer(rig.env.amqp_url, topology.prefix)
    try:
        await stack.start(api=False, dispatchers=1, senders=2)
        await producer.start()  # once the services declared the prefix's exchanges
        return await _load(pipe, stack, _round_robin(producer, org_ids), topology)
    finally:
        await producer.close()
        await stack.stop_all()
        await delete_broker_objects(
            rig.env.amqp_url, topology.prefix, [topology.retry_delay_scale], shards
        )


def _round_robin(
    producer: load.AmqpProducer, org_ids: list[str]
) -> Callable[[int, load.Sent], Awaitable[None]]:
    senders = [producer.sender(org_id) for org_id in org_ids]
    return lambda n, sent: senders[n % len(senders)](n, sent)


async def _load(
    pipe: Pipeline,
    stack: Stack,
    send_one: Callable[[int, load.Sent], Awaitable[None]],
    topology: Topology,
) -> ShardRun:
    rig, sent = pipe.rig, load.Sent()
    base = rig.arrivals.get(SCENARIO)
    t0 = time.time()
    w0, w1 = t0 + WARMUP_S, t0 + WARMUP_S + WINDOW_S
    processes = [rig.receiver, *stack.started]
    loop = load.closed_loop(
        send_one, until=w1, concurrency=CONCURRENCY, fanout=FANOUT, arrivals=rig.arrivals,
        scenario=SCENARIO, max_backlog=MAX_BACKLOG, sent=sent,
    )  # fmt: skip
    generator = asyncio.create_task(loop)
    await sleep_until(w0)
    before = snapshot(processes)
    await sleep_until(w1)
    after = snapshot(processes)
    await generator
    expected = len(sent.events) * FANOUT
    await rig.wait_arrivals(SCENARIO, base + expected, timeout=60)
    records = (await rig.records(SCENARIO))[base:]
    in_window = sum(1 for r in records if before.t <= r.arrived < after.t)
    per_event = Counter(r.event_id for r in records)
    texts = [await _metrics(pipe, sender.url("/metrics")) for sender in stack.senders]
    queues = [q.name for q in topology.sender_queues] + [topology.sender_queue.name]
    tasks = {
        q: int(sum(sample(t, "hookpost_sender_tasks_total", f'queue="{q}"') for t in texts))
        for q in queues
    }
    return ShardRun(
        shards=topology.sender_shards,
        deliveries_per_s=round(in_window / (after.t - before.t), 1),
        deliveries_in_window=in_window,
        events_sent=len(sent.events),
        deliveries_expected=expected,
        deliveries_arrived=len(records),
        duplicate_posts=sum(n - FANOUT for n in per_event.values() if n > FANOUT),
        lost=sum(max(FANOUT - per_event.get(e[2], 0), 0) for e in sent.events),
        tasks_by_queue=tasks,
        cpu_s_per_1000_deliveries=cpu_report(before, after, in_window).cpu_s_per_1000_deliveries,
    )


async def _metrics(pipe: Pipeline, url: str) -> str:
    async with pipe.rig.session.get(url) as response:
        return await response.text()
