"""Phase 3: the most the pipeline delivers, a closed loop through POST /api/v1/events (or
straight onto the broker, the AMQP producers' door); CPU per service, PostgreSQL per
statement and per connection, then py-spy while the load goes on."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from benchmarks import load
from benchmarks.common import log, percentiles, sleep_until
from benchmarks.config import CONCURRENCY, MAX_BACKLOG, PROFILE_S, PROFILED, WARMUP_S, WINDOW_S
from benchmarks.measure import PgActivity, cpu_report, snapshot
from benchmarks.profile import profile_services
from benchmarks.results import Profiles, Throughput, ThroughputSeries
from benchmarks.rig import Pipeline
from benchmarks.statements import StatementStats


async def measure(
    pipe: Pipeline,
    scenario: str,
    fanout: int,
    *,
    amqp: bool = False,
    window_s: float = WINDOW_S,
    profile: tuple[str, ...] = PROFILED,
) -> Throughput:
    """`scenario` is also the org's name; `amqp`: publish to the broker, not the api."""
    rig = pipe.rig
    sent = load.Sent()
    t0 = time.time()
    w0, w1 = t0 + WARMUP_S, t0 + WARMUP_S + window_s
    base = rig.arrivals.get(scenario)
    if amqp:
        send_one = pipe.amqp.sender(pipe.org_id(scenario))
    else:
        send_one = load.http_sender(rig.session, pipe.api_url, pipe.token(scenario))
    generator = asyncio.create_task(
        load.closed_loop(
            send_one, until=w1 + PROFILE_S, concurrency=CONCURRENCY, fanout=fanout,
            arrivals=rig.arrivals, scenario=scenario, max_backlog=MAX_BACKLOG, sent=sent,
        )
    )  # fmt: skip
    await sleep_until(w0)
    before = snapshot(pipe.processes())
    activity = PgActivity(pipe.pool, rig.env.name).start()
    statements = await StatementStats(pipe.pool).start()
    await sleep_until(w1)
    after = snapshot(pipe.processes())
    pg_activity = await activity.stop(pipe.stack.started)
    await statements.end()
    profiles: Profiles = {}
    if PROFILE_S:  # BENCH_PROFILE_S=0: no py-spy
        log(f"  measured window over; py-spy {PROFILE_S} s on {', '.join(profile)}")
        targets = {name: pipe.profiled()[name] for name in profile}
        profiles = await profile_services(targets, scenario, PROFILE_S, rig.run.logs / "profiles")
    await generator
    drained = await rig.wait_arrivals(scenario, base + len(sent.events) * fanout, timeout=45)
    records = (await rig.records(scenario))[base:]
    arrivals = np.array([r.arrived for r in records])
    in_window = int(((arrivals >= before.t) & (arrivals < after.t)).sum())
    seconds = after.t - before.t
    accepted = sum(1 for e in sent.events if before.t <= e[1] < after.t)
    # deliveries per event: an arrival counted more than once would be a duplicate POST
    per_event: dict[str | None, int] = {}
    for r in records:
        per_event[r.event_id] = per_event.get(r.event_id, 0) + 1
    accept_ms = [(e[1] - e[0]) * 1000 for e in sent.events]
    return Throughput(
        fanout=fanout,
        door="AMQP publish to <prefix>.events" if amqp else "POST /api/v1/events",
        deliveries_per_s=in_window / seconds,
        events_accepted_per_s=accepted / seconds,
        deliveries_in_window=in_window,
        events_sent_total=len(sent.events),
        request_errors=sent.errors,
        drained=drained,
        duplicate_posts=sum(n - fanout for n in per_event.values() if n > fanout),
        api_accept_ms=percentiles(accept_ms, "p50", "p99"),
        cpu=cpu_report(before, after, in_window),
        postgres_connections=pg_activity,
        postgres_statements=statements.report(in_window),
        profiles=profiles,
        series=ThroughputSeries(t0=t0, w0=before.t, w1=after.t, arrivals=arrivals),
    )
