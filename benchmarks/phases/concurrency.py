"""Phase 5: sender replicas under a backlog. The senders are paused while thousands of slow
deliveries queue up, then resumed: POSTs in flight, throughput and RSS per replica."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from benchmarks.common import pct
from benchmarks.config import DEFAULT_PREFETCH, SLOW_EVENTS, SLOW_S, SUBSCRIPTIONS, WIDE_EVENTS
from benchmarks.measure import PgActivity, RssSamples, cpu_report, snapshot
from benchmarks.results import Concurrency, Replica
from benchmarks.rig import Pipeline

COUNT_SQL = "SELECT count(*) FROM deliveries WHERE organization_id = $1"


async def _queue_while_paused(pipe: Pipeline, scenario: str) -> int:
    """Publish the events with the senders paused; wait until the dispatcher stored every
    delivery. How many deliveries are expected."""
    org_id = pipe.org_id(scenario)
    already = await pipe.pool.fetchval(COUNT_SQL, org_id)
    sent = await pipe.amqp.publish_n(org_id, WIDE_EVENTS if scenario == "wide" else SLOW_EVENTS)
    expected = len(sent.events) * dict(SUBSCRIPTIONS)[scenario]
    for _ in range(300):  # up to 60 s for the dispatcher to insert them all
        if await pipe.pool.fetchval(COUNT_SQL, org_id) >= already + expected:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # the last inserted deliveries' tasks are being confirmed
    return expected


async def measure(pipe: Pipeline, label: str, scenario: str = "slow") -> Concurrency:
    rig, senders = pipe.rig, pipe.stack.senders
    base = rig.arrivals.get(scenario)
    expected = 0
    for sender in senders:
        sender.pause()
    try:
        expected = await _queue_while_paused(pipe, scenario)
    finally:
        before = snapshot(pipe.processes())
        t_resume = time.time()
        for sender in senders:
            sender.resume()
    rss = RssSamples(senders).start()
    activity = PgActivity(pipe.pool, rig.env.name).start()
    drained = await rig.wait_arrivals(scenario, base + expected, timeout=90)
    after = snapshot(pipe.processes())
    pg_activity = await activity.stop(pipe.stack.started)
    await rss.stop()
    ports = {s.name: s.client_ports(rig.receiver.port) for s in senders}
    rows = (await rig.records(scenario))[base:]
    starts_all = np.sort(np.array([r.arrived for r in rows]))
    # saturated window: from the first arrival + 0.5 s until 90 % of the deliveries arrived
    s0 = starts_all[0] + 0.5
    s1 = starts_all[int(len(starts_all) * 0.9) - 1]
    grid = np.arange(s0, s1, 0.05)
    replicas: dict[str, Replica] = {}
    series: dict[str, np.ndarray] = {"t": grid - t_resume}
    for name, own in ports.items():
        mine = [r for r in rows if r.peer_port in own]
        starts = np.sort(np.array([r.arrived for r in mine]))
        ends = np.sort(np.array([r.answered for r in mine]))
        open_now = np.searchsorted(starts, grid, "right") - np.searchsorted(ends, grid, "right")
        finished = int(((ends >= s0) & (ends < s1)).sum())
        series[name] = open_now
        replicas[name] = Replica(
            deliveries=len(mine),
            in_flight_mean=float(open_now.mean()) if len(grid) else 0.0,
            in_flight_p50=pct(open_now, 50),
            in_flight_max=int(open_now.max()) if len(grid) else 0,
            deliveries_per_s=finished / (s1 - s0),
            rss_mb_max=max(rss.samples[name]),
            rss_mb_start=rss.samples[name][0],
            connections_to_receiver=len(own),
        )
    return Concurrency(
        label=label,
        endpoint_ms=int(SLOW_S[scenario] * 1000),
        prefetch=int(senders[0].env.get("HOOKPOST_SENDER_PREFETCH", DEFAULT_PREFETCH)),
        deliveries=len(rows),
        expected=expected,
        drained=drained,
        saturated_window_s=float(s1 - s0),
        total_deliveries_per_s=float(((starts_all >= s0) & (starts_all < s1)).sum() / (s1 - s0)),
        unattributed_deliveries=len(rows) - sum(r.deliveries for r in replicas.values()),
        cpu=cpu_report(before, after, len(rows)),
        postgres_connections=pg_activity,
        replicas=replicas,
        series=series,
    )
