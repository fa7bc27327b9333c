"""Phase: an endpoint's slowness or rate limit stays its own problem (libs/delivery/limits.py).

    fairness    one org, every event to two endpoints: one answering after 2 s, one at once,
                FAIR_RATE events/s; the fast endpoint's p99 against its p99 alone
                (target: at most 1.5 ×). Measured once both endpoints are established:
                the load runs FAIR_WARM_S first, unmeasured, as a slow endpoint's customer
                has been sending to it for a while. A new slow endpoint's first seconds
                (its limit grows from 32 while its first answers take 2 s) are a transient
                of their own, reported apart: the warm-up window's p99, beside against
                alone ("from cold")
    throttling  an endpoint answering 429 with `Retry-After: 1` once it has let
                THROTTLED_PER_S requests through in a second, at FAIR_RATE events/s, beside a
                bystander org at the same rate: the requests per second the throttled
                endpoint gets (target: about THROTTLED_PER_S) and the bystander's p99.
                400 events/s is more than this machine carries (BENCHMARKS.md, "Session
                13"), so it is run again within capacity: FAIR_RATE / 2 to each, the same
                total as the fast endpoint alone, whose p99 the bystander's is set against

`make bench` runs it last, on a stack of its own (`on_own_stack`: a fresh database, receiver
and services) once the machine is quiet. On the bench's stack, after the throughput, latency
and batch phases, the fast endpoint's p99 *alone* was 315 ms against 21-33 ms on a fresh stack
(BENCHMARKS.md, "Session 12"): the phase measured the earlier phases' aftermath. Each run
waits for its backlog to drain and the machine to be quiet before the next, so no run
measures another's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

import psutil

from benchmarks import load
from benchmarks.common import log, percentiles
from benchmarks.config import FAIR_RATE, FAIR_S, FAIR_WARM_S, THROTTLED_PER_S
from benchmarks.results import Fairness, Throttling
from benchmarks.rig import Pipeline, Rig, Run, subscribe
from harness.orgs import create_org

DRAIN_TIMEOUT_S = 240.0
QUIET_CPU_PERCENT = 15.0  # of the whole machine, over one second
QUIET_TIMEOUT_S = 120.0


async def on_own_stack() -> Fairness:
    """`measure` on a fresh database, receiver and services, torn down after."""
    rig = await Rig.start(Run.new())
    pipe: Pipeline | None = None
    try:
        pipe = await Pipeline.start(rig)
        return await measure(pipe)
    finally:
        if pipe is not None:
            await pipe.close()
        await rig.close()


async def measure(pipe: Pipeline) -> Fairness:
    await _quiet()
    log(f"fairness: {FAIR_RATE:g} events/s to a fast endpoint alone, {FAIR_S:g} s")
    alone = await _run(pipe, "fairalone", ["fairalone"], "fairalone", warm_s=FAIR_WARM_S)
    log(f"  p99 {alone.measured['p99']:.1f} ms; then beside a 2 s endpoint")
    await _quiet()
    beside_slow = await _run(pipe, "fair", ["fairslow", "fairfast"], "fairfast", warm_s=FAIR_WARM_S)
    log(f"  p99 {beside_slow.measured['p99']:.1f} ms; then beside a second fast endpoint")
    await _drained(pipe, "fairslow")
    await _quiet()
    # The same deliveries as beside the slow one, none of them slow: what the second
    # endpoint's load costs the fast one, apart from its slowness.
    beside_fast = await _run(
        pipe, "fairctl", ["fairctl", "fairctlfast"], "fairctlfast", warm_s=FAIR_WARM_S
    )
    log(f"  p99 {beside_fast.measured['p99']:.1f} ms")
    await _quiet()
    log(f"throttling: {FAIR_RATE:g} events/s to a receiver allowing {THROTTLED_PER_S}/s")
    over = await _throttling(pipe, "", FAIR_RATE)
    await _quiet()
    half = FAIR_RATE / 2
    log(f"throttling within capacity: {half:g} events/s to each, {FAIR_RATE:g} in all")
    within = await _throttling(pipe, "half", half)

    alone_cold, beside_cold = alone.warm_up, beside_slow.warm_up

    def ratio(measured: dict[str, float], baseline: dict[str, float]) -> float | None:
        return round(measured["p99"] / baseline["p99"], 2) if baseline["p99"] else None

    # The throttling runs start cold (a fresh org each): their bystander is set against the
    # fast endpoint's own cold start.
    return Fairness(
        rate_per_s=FAIR_RATE,
        fast_alone_ms=alone.measured,
        fast_beside_slow_ms=beside_slow.measured,
        fast_ratio=ratio(beside_slow.measured, alone.measured),
        fast_beside_fast_ms=beside_fast.measured,
        throttled_limit_per_s=THROTTLED_PER_S,
        throttled_requests_per_s=over.requests_per_s,
        bystander_ms=over.bystander_ms,
        bystander_ratio=ratio(over.bystander_ms, alone_cold),
        throttled_drained_s=over.drained_s,
        within_capacity=replace(within, bystander_ratio=ratio(within.bystander_ms, alone_cold)),
        warm_s=FAIR_WARM_S,
        fast_alone_cold_ms=alone_cold,
        fast_beside_new_slow_ms=beside_cold,
        fast_ratio_from_cold=ratio(beside_cold, alone_cold),
    )


async def _throttling(pipe: Pipeline, suffix: str, rate: float) -> Throttling:
    """The throttled endpoint and the bystander org, each at `rate` events/s at once."""
    throttled, bystander = f"throttled{suffix}", f"bystander{suffix}"
    throttled_task = asyncio.create_task(_run(pipe, throttled, [throttled], None, rate))
    bystander_ms = (await _run(pipe, bystander, [bystander], bystander, rate)).measured
    offered = (await throttled_task).measured
    requests_per_s = await _requests_per_s(pipe, throttled, offered["window"])
    log(f"  throttled got {requests_per_s:.1f} requests/s; bystander p99 {bystander_ms['p99']:.1f}")
    return Throttling(
        rate_per_s=rate,
        requests_per_s=round(requests_per_s, 1),
        bystander_ms=bystander_ms,
        drained_s=await _drained(pipe, throttled, since=offered["ended"]),
    )


@dataclass(frozen=True)
class _Windows:
    """One `_run`'s figures: the measured window's, and its warm-up's (empty without one)."""

    measured: dict[str, float]
    warm_up: dict[str, float] = field(default_factory=dict)


async def _run(
    pipe: Pipeline,
    org: str,
    groups: list[str],
    measured: str | None,
    rate: float = FAIR_RATE,
    warm_s: float = 0.0,
) -> _Windows:
    """A fresh org with one subscription per receiver group; `warm_s` then FAIR_S at `rate`
    events/s, one open loop after the other; the latency percentiles of the `measured`
    group over FAIR_S, and over the warm-up (or the window's span, when None)."""
    rig = pipe.rig
    made = await asyncio.to_thread(create_org, pipe.stack.env, org, "PRO")
    token = made["apiToken"]
    for group in groups:
        await subscribe(rig, pipe.api_url, token, group, 1)
    warm, sent = load.Sent(), load.Sent()
    if warm_s:
        await load.open_loop(
            rig.session, pipe.api_url, token,
            rate_per_s=rate, duration_s=warm_s, max_open=256, sent=warm,
        )  # fmt: skip
    started = asyncio.get_running_loop().time()
    await load.open_loop(
        rig.session, pipe.api_url, token,
        rate_per_s=rate, duration_s=FAIR_S, max_open=256, sent=sent,
    )  # fmt: skip
    window = asyncio.get_running_loop().time() - started
    if measured is None:
        return _Windows({"window": window, "ended": started + window})
    await rig.wait_arrivals(measured, len(warm.events) + len(sent.events), timeout=60)
    first: dict[str | None, float] = {}
    for record in await rig.records(measured):
        if record.status == 200:
            first.setdefault(record.event_id, record.arrived)
    steady, cold = _latencies(sent, first), _latencies(warm, first)
    return _Windows(
        {**percentiles(steady, "p50", "p99"), "arrived": len(steady), "window": window},
        {**percentiles(cold, "p50", "p99"), "arrived": len(cold)} if warm_s else {},
    )


def _latencies(sent: load.Sent, first: dict[str | None, float]) -> list[float]:
    """Each answered event's latency, its send to its first 200, in ms."""
    return [(first[e[2]] - e[0]) * 1000 for e in sent.events if e[2] in first]


async def _requests_per_s(pipe: Pipeline, group: str, window_s: float) -> float:
    """Requests of every status the group received during the load, per second."""
    records = await pipe.rig.records(group)
    if not records:
        return 0.0
    start = records[0].arrived
    return sum(1 for r in records if r.arrived - start <= window_s) / window_s


async def _drained(pipe: Pipeline, group: str, since: float | None = None) -> float | None:
    """Wait (bounded) until every event sent to the group was answered 200 once: the seconds
    from `since` (the loop's clock; default now) until then, or None past the bound."""
    rig = pipe.rig
    started = asyncio.get_running_loop().time()
    since = started if since is None else since
    while asyncio.get_running_loop().time() < started + DRAIN_TIMEOUT_S:
        records = await rig.records(group)
        ok = {r.event_id for r in records if r.status == 200}
        sent = await pipe.pool.fetchval(
            "SELECT count(*) FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id"
            " WHERE e.url_masked LIKE $1",
            f"%/{group}/%",
        )
        if len(ok) >= sent:
            return round(asyncio.get_running_loop().time() - since, 1)
        await asyncio.sleep(0.5)
    log(f"  {group}: backlog not drained within {DRAIN_TIMEOUT_S:g} s")
    return None


async def _quiet() -> None:
    """Wait (bounded) until the machine's CPU is below QUIET_CPU_PERCENT for a second: the
    stack's own background work (a vacuum, a checkpoint, a drained backlog's last records)
    must not be measured as the next run's latency."""
    deadline = asyncio.get_running_loop().time() + QUIET_TIMEOUT_S
    busy = 100.0
    while asyncio.get_running_loop().time() < deadline:
        busy = await asyncio.to_thread(psutil.cpu_percent, 1.0)
        if busy < QUIET_CPU_PERCENT:
            return
    log(f"  machine not quiet within {QUIET_TIMEOUT_S:g} s ({busy:.0f} % busy): measuring anyway")
