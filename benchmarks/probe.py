"""`python -m benchmarks.probe`: one or two bench phases on a fresh stack, for A/B work.

    python -m benchmarks.probe --rate 180            latency, open loop at 180 events/s
    python -m benchmarks.probe --throughput          1-endpoint maximum, then latency at 50 %
    python -m benchmarks.probe --throughput --fanout also the fan-out 10 maximum, before latency
    python -m benchmarks.probe --skeleton            the design's ceilings (benchmarks/skeleton.py)
    python -m benchmarks.probe --slow-room 100       fan-out 10 to a 2 s endpoint at 100 events/s:
                                                     the dispatcher's first-attempt room, its RSS
    python -m benchmarks.probe --fairness            a fast endpoint beside a slow one, and a
                                                     rate-limiting one beside a bystander
    python -m benchmarks.probe --sharded             fan-out traffic through 1, then 4 sender
                                                     work queues (HOOKPOST_SENDER_SHARDS)
    python -m benchmarks.probe --peer                django-webhook alone: 1 endpoint, fan-out
                                                     10, latency (benchmarks/phases/peer.py)
    python -m benchmarks.probe --batch               batches of 100 events, 1 endpoint each:
                                                     POST /events/batch, then AMQP (batch.py)
    python -m benchmarks.probe --concurrency 2400    sender replicas at that prefetch under a
                                                     backlog for 100 endpoints at 2 s (as
                                                     make bench): in flight and RSS per replica

The same stack, load and reports as `make bench` (benchmarks/run.py), without the ceilings and
the other phases: a change's effect on one regime in a couple of minutes. Its figures are
for comparing two builds on the same machine back to back, not the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio

from benchmarks import report
from benchmarks.common import log
from benchmarks.config import FANOUT, LATENCY_S
from benchmarks.phases import (
    batch,
    concurrency,
    fairness,
    latency,
    peer,
    sharded,
    skeleton,
    slow_room,
    throughput,
)
from benchmarks.results import as_dict
from benchmarks.rig import Pipeline, Rig, Run


async def probe(
    rate: float | None,
    throughput_first: bool,
    fanout: bool,
    skeletons: bool,
    room: float | None,
    fair: bool = False,
    shards: bool = False,
    peers: bool = False,
    batches: bool = False,
    prefetch: int | None = None,
) -> None:
    rig = await Rig.start(Run.new())
    pipe: Pipeline | None = None
    pipeline = rate is not None or throughput_first  # the phases that measure hookpost's maximum
    try:
        if skeletons:
            for n in (1, FANOUT):
                report.print_skeleton(await skeleton.measure(rig, n))
        if peers:
            report.print_peer(await peer.measure(rig))
        if not (pipeline or room or fair or shards or batches or prefetch):
            return
        pipe = await Pipeline.start(rig)
        if batches:
            print(f"batch        {as_dict(await batch.measure(pipe))}")
        if prefetch is not None:
            await _senders_at(pipe, prefetch)
            log(f"sender concurrency, prefetch {prefetch}, 100 endpoints at 2,000 ms")
            label = f"prefetch {prefetch}, 100 endpoints at 2 s"
            found = await concurrency.measure(pipe, label, "wide")
            report.print_concurrency(found)
            print(
                f"             {found.deliveries:,} of {found.expected:,} arrived"
                f" (drained: {found.drained}), saturated window {found.saturated_window_s:.1f} s"
            )
        if shards:
            print(f"sharded      {as_dict(await sharded.measure(pipe))}")
        if fair:
            report.print_fairness(await fairness.measure(pipe))
        if room is not None:
            log(f"slow room: fan-out {FANOUT} to a 2 s endpoint at {room:g} events/s")
            print(f"slow room    {as_dict(await slow_room.measure(pipe, room))}")
        if not pipeline:
            return
        if throughput_first:
            tput = await throughput.measure(pipe, "tput", 1)
            print(
                f"throughput   {tput.deliveries_per_s:,.0f} deliveries/s; cpu s / 1,000 "
                f"deliveries {tput.cpu.cpu_s_per_1000_deliveries}"
            )
            report.print_cores(tput.cpu)
            report.print_profiles(tput.profiles)
            rate = rate or 0.5 * tput.deliveries_per_s
        if fanout:
            fan = await throughput.measure(pipe, "fanout", FANOUT)
            print(
                f"fan-out {FANOUT}   {fan.deliveries_per_s:,.0f} deliveries/s; cpu s / "
                f"1,000 deliveries {fan.cpu.cpu_s_per_1000_deliveries}"
            )
            report.print_cores(fan.cpu)
        assert rate is not None
        log(f"latency: open loop at {rate:,.0f} events/s for {LATENCY_S:g} s")
        report.print_latency(await latency.measure(pipe, "lat", rate))
    finally:
        log("teardown")
        if pipe is not None:
            await pipe.close()
        await rig.close()


async def _senders_at(pipe: Pipeline, prefetch: int) -> None:
    """As make bench's sender phases: every first attempt through the senders, and a pair of
    senders at `prefetch` (HOOKPOST_* of this process's environment reach every service)."""
    stack = pipe.stack
    for dispatcher in list(stack.dispatchers):
        await stack.remove(dispatcher)
    await stack.add_dispatcher("dispatcher-2", HOOKPOST_DISPATCHER_FIRST_ATTEMPTS="0")
    for sender in list(stack.senders):
        await stack.remove(sender)
    for i in (3, 4):
        await stack.add_sender(f"sender-{i}", HOOKPOST_SENDER_PREFETCH=str(prefetch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, help="events/s of the latency phase")
    parser.add_argument("--throughput", action="store_true", help="measure the maximum first")
    parser.add_argument("--fanout", action="store_true", help="and the fan-out 10 maximum")
    parser.add_argument("--skeleton", action="store_true", help="the design's ceilings first")
    parser.add_argument("--slow-room", type=float, help="events/s of fan-out to a 2 s endpoint")
    parser.add_argument("--fairness", action="store_true", help="slow and throttling endpoints")
    parser.add_argument("--sharded", action="store_true", help="1 vs 4 sender work queues")
    parser.add_argument("--peer", action="store_true", help="django-webhook, the Python peer")
    parser.add_argument("--batch", action="store_true", help="batch ingest, HTTP and AMQP")
    parser.add_argument("--concurrency", type=int, help="sender prefetch, 2 s endpoints' backlog")
    args = parser.parse_args()
    # The phases to run, each option once and in probe()'s order (--fanout only widens
    # --throughput, so it chooses nothing by itself).
    phases = (
        args.rate,
        args.throughput,
        args.skeleton,
        args.slow_room,
        args.fairness,
        args.sharded,
        args.peer,
        args.batch,
        args.concurrency,
    )
    if not any(phases):
        parser.error(
            "give --rate, --throughput, --skeleton, --slow-room, --fairness, --sharded,"
            " --peer, --batch, --concurrency"
        )
    rate, throughput, *others = phases
    asyncio.run(probe(rate, throughput, args.fanout, *others))


if __name__ == "__main__":
    main()
