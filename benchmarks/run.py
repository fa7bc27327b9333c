"""`make bench`: ceilings, a real Python peer, then the whole pipeline end to end, in one run
on this machine.

    1. ceilings     broker round trips (consumer in its own process), aiohttp POSTs to the
                    receiver (its own process), PostgreSQL inserts     (benchmarks/ceilings.py);
                    then the design's own ceiling: the same load through HTTP in, one
                    confirmed broker round trip, HTTP out, with no database and no logic,
                    1 endpoint and fan-out 10: 5 s warm-up, 15 s measured (benchmarks/skeleton.py)
    2. peer         django-webhook (Django view on gunicorn, Celery worker) in its own venv,
                    database and broker prefix, by the same load generator to the same
                    receiver: 1 endpoint and fan-out 10, then latency at 10 events/s and at
                    50 % of its maximum (benchmarks/phases/peer.py)
    3. stack        own database + broker prefix; api, dispatcher, 2 senders as subprocesses
    4. throughput   1 endpoint per event, then fan-out 10: 5 s warm-up, 30 s measured
                    (CPU per service), then 10 s of py-spy on api, dispatcher, sender-1
    5. latency      open loop at 10 events/s, then at 50 % of the measured 1-endpoint maximum
                    (phases 4 and 5: the dispatcher makes first attempts itself, the default)
    6. batch        POST /api/v1/events/batch, then AMQP messages of many events, 1 endpoint
                    per event: deliveries/s (benchmarks/phases/batch.py)
    7. sharded      the sender work queue unsharded and in 4 shards, the same fan-out
                    traffic (benchmarks/phases/sharded.py)
    8. concurrency  the dispatcher is replaced by one that hands every first attempt to the
                    sender queue (HOOKPOST_DISPATCHER_FIRST_ATTEMPTS=0): these phases measure
                    sender replicas.
                    receiver takes 200 ms; senders paused while 6,000 deliveries queue, then
                    resumed: in-flight POSTs, throughput and RSS per replica
                    (default prefetch, then a second sender pair with prefetch 2,400; then
                    the same pair against 100 endpoints that take 2,000 ms each (200
                    events), where the in-flight count is bounded by prefetch, each
                    endpoint's adaptive limit and the replica's CPU)
    9. retries      the second pair runs with HOOKPOST_RETRY_DELAY_SCALE = 1/60 (60 s → 1 s);
                    an endpoint answers 500 then 200: lateness of attempt 2 vs its schedule
   10. fairness     on a stack of its own (fresh database, receiver, services), once the
                    machine is quiet: a fast endpoint's p99 beside a 2 s one, against alone;
                    an endpoint that rate-limits with 429 + Retry-After: what it gets, and a
                    bystander's p99 (benchmarks/phases/fairness.py)

Each phase is a module of benchmarks/phases/ returning its typed result
(benchmarks/results.py); this module runs them in order on one Rig and Pipeline
(benchmarks/rig.py). All figures go to bench-results/bench-<run>.json, plots to
docs/bench/*.png. The summary ends with issue 21's targets, each measured value and met / not
met (benchmarks/targets.py); the last line printed is `bench: e2e_dps=… fanout_dps=… p50_ms=…
p99_ms=… ceiling_broker=… ceiling_http=… ratio=… skeleton_ratio_1=… skeleton_ratio_fanout=…
batch_dps=… peer_ratio=…` (ratio = e2e deliveries/s ÷ broker round trips/s; peer_ratio = the
smaller of hookpost ÷ django-webhook at 1 endpoint and at fan-out 10; nan: not measured).
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson

from benchmarks import plots, report
from benchmarks.common import log
from benchmarks.config import (
    AMQP_WINDOW_S,
    BIG_PREFETCH,
    DOCS,
    FANOUT,
    FLOOR_RATE,
    LATENCY_S,
    OUT,
    RETRY_EVENTS,
    RETRY_SCALE,
    SKELETON_WINDOW_S,
    SLOW_EVENTS,
    WARMUP_S,
    WINDOW_S,
)
from benchmarks.machine import machine, versions
from benchmarks.phases import (
    batch,
    ceilings,
    concurrency,
    fairness,
    latency,
    peer,
    retry,
    sharded,
    skeleton,
    throughput,
)
from benchmarks.results import BenchResults, Concurrency, Peer, Retry, to_json
from benchmarks.rig import Pipeline, Rig, Run
from harness.process import ROOT


async def sender_phases(pipe: Pipeline) -> tuple[Concurrency, Concurrency, Concurrency, Retry]:
    """Phases 5 and 6, which measure sender replicas: the dispatchers are replaced by one
    that hands every first attempt to the senders, the senders by a pair tuned for them."""
    stack, env = pipe.stack, pipe.rig.env
    log("dispatcher replaced by one that hands every first attempt to the senders")
    for dispatcher in list(stack.dispatchers):
        await stack.remove(dispatcher)
    await stack.add_dispatcher("dispatcher-2", HOOKPOST_DISPATCHER_FIRST_ATTEMPTS="0")
    log(f"sender concurrency, default prefetch: {SLOW_EVENTS * FANOUT:,} deliveries at 200 ms")
    default = await concurrency.measure(pipe, "default prefetch")

    log(f"second sender pair: retry scale 1/60, prefetch {BIG_PREFETCH}")
    for sender in list(stack.senders):
        await stack.remove(sender)
    pair = env.retry_scale(RETRY_SCALE) | {"HOOKPOST_SENDER_PREFETCH": str(BIG_PREFETCH)}
    for i in (3, 4):
        await stack.add_sender(f"sender-{i}", **pair)
    log(f"sender concurrency, prefetch {BIG_PREFETCH}")
    big = await concurrency.measure(pipe, f"prefetch {BIG_PREFETCH}")
    log(f"sender concurrency, prefetch {BIG_PREFETCH}, 100 endpoints at 2,000 ms")
    label = f"prefetch {BIG_PREFETCH}, 100 endpoints at 2 s"
    slow_endpoint = await concurrency.measure(pipe, label, "wide")
    log(f"retry precision: {RETRY_EVENTS} deliveries, 500 then 200, first tier 1,000 ms")
    retried = await retry.measure(pipe)
    late = retried.lateness_ms
    log(f"  lateness p50 {late['p50']:.0f} ms, p99 {late['p99']:.0f} ms")
    return default, big, slow_endpoint, retried


async def peer_phase(rig: Rig) -> Peer | None:
    """django-webhook beside us; None when it could not run (the rest of the run still can)."""
    try:
        return await peer.measure(rig)
    except Exception as exc:
        log(f"peer phase failed, reported as not measured: {exc!r}")
        return None


async def bench() -> BenchResults:
    run = Run.new()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    host = machine()
    started = time.time()
    log(f"bench {run.env.name}: database, receiver")
    rig = await Rig.start(run)
    pipe: Pipeline | None = None
    try:
        found = await versions(rig.env)
        ceiling = await ceilings.measure(rig)
        for fanout in (1, FANOUT):
            log(f"ceiling of the design (benchmarks/skeleton.py), fan-out {fanout}: "
                f"{WARMUP_S:g} s warm-up, {SKELETON_WINDOW_S:g} s measured")  # fmt: skip
            ceiling.skeletons[fanout] = await skeleton.measure(rig, fanout)
            log(f"  {ceiling.skeletons[fanout].deliveries_per_s:,.0f} deliveries/s")

        peer_found = await peer_phase(rig)
        pipe = await Pipeline.start(rig)
        log(f"throughput, 1 endpoint per event: {WARMUP_S:g} s warm-up, {WINDOW_S:g} s measured")
        tput = await throughput.measure(pipe, "tput", 1)
        log(f"  {tput.deliveries_per_s:,.0f} deliveries/s")
        log(f"throughput, fan-out {FANOUT}: {WARMUP_S:g} s warm-up, {WINDOW_S:g} s measured")
        fan = await throughput.measure(pipe, "fanout", FANOUT)
        log(f"  {fan.deliveries_per_s:,.0f} deliveries/s")
        log(f"throughput without the api (AMQP producer door), 1 endpoint: {AMQP_WINDOW_S:g} s")
        direct = await throughput.measure(
            pipe, "amqp", 1, amqp=True, window_s=AMQP_WINDOW_S, profile=("dispatcher", "sender-1")
        )
        log(f"  {direct.deliveries_per_s:,.0f} deliveries/s")

        log(f"latency floor: open loop at {FLOOR_RATE:g} events/s for {LATENCY_S:g} s")
        floor = await latency.measure(pipe, "floor", FLOOR_RATE, profile_s=0)
        e2e = floor.e2e_ms
        log(f"  p50 {e2e['p50']:.1f} ms, p95 {e2e['p95']:.1f} ms, p99 {e2e['p99']:.1f} ms")
        rate = max(5.0, 0.5 * tput.deliveries_per_s)
        log(f"latency: open loop at {rate:,.0f} events/s (50 % of max) for {LATENCY_S:g} s")
        lat = await latency.measure(pipe, "lat", rate)
        e2e = lat.e2e_ms
        log(f"  p50 {e2e['p50']:.1f} ms, p95 {e2e['p95']:.1f} ms, p99 {e2e['p99']:.1f} ms")

        batched = await batch.measure(pipe)
        log(f"sharded sender queues: 1 then {sharded.SHARDS}, fan-out traffic")
        shards = await sharded.measure(pipe)
        default, big, slow_endpoint, retried = await sender_phases(pipe)
    finally:
        log("teardown")
        exit_codes = await pipe.close() if pipe is not None else {}
        exit_codes |= await rig.close()
    log("fairness and throttling, on a stack of their own")
    fair = await fairness.on_own_stack()
    return BenchResults(
        run=run.run_id, started=started_at, machine=host, versions=found, ceilings=ceiling,
        throughput_1=tput, throughput_fanout=fan, throughput_amqp=direct,
        latency_floor=floor, latency=lat,
        concurrency_default=default, concurrency_big=big, concurrency_slow_endpoint=slow_endpoint,
        retry=retried, fairness=fair, peer=peer_found, sharded=shards,
        batch=batched,
        exit_codes=exit_codes, duration_s=round(time.time() - started, 1),
    )  # fmt: skip


def main() -> None:
    results = asyncio.run(bench())
    OUT.mkdir(exist_ok=True)
    DOCS.mkdir(parents=True, exist_ok=True)
    written = plots.render(results, DOCS)
    path = OUT / f"bench-{results.run}.json"
    path.write_bytes(
        orjson.dumps(to_json(results), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    (OUT / "latest.json").write_bytes(path.read_bytes())
    report.print_summary(results)
    print(f"figures      {path}; plots {', '.join(str(p.relative_to(ROOT)) for p in written)}")
    print(report.summary_line(results))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
