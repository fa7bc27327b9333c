"""The design's own ceiling: the same closed loop against benchmarks/skeleton.py (HTTP in,
one confirmed broker round trip, `fanout` POSTs out; no database, no logic)."""

from __future__ import annotations

import asyncio
import os
import sys
import time

from benchmarks import load
from benchmarks.common import sleep_until
from benchmarks.config import CONCURRENCY, MAX_BACKLOG, SKELETON_WINDOW_S, WARMUP_S
from benchmarks.measure import cpu_report, snapshot
from benchmarks.results import Skeleton
from benchmarks.rig import Rig
from harness.process import Process, free_port


def _process(rig: Rig, role: str, fanout: int, *args: str) -> Process:
    name, port = f"skeleton-{role}-{fanout}", free_port()
    argv = [sys.executable, "-m", "benchmarks.skeleton", role, "--port", str(port), *args]
    return Process(name, argv, env=os.environ, port=port, log_path=rig.run.logs / f"{name}.log")


async def measure(rig: Rig, fanout: int) -> Skeleton:
    scenario = f"skeleton{fanout}"
    queue = f"{rig.env.name}.skeleton.{fanout}"
    common = ("--queue", queue, "--amqp-url", rig.env.amqp_url)
    ingress = _process(rig, "ingress", fanout, *common)
    relay = _process(
        rig, "relay", fanout, *common,
        "--receiver", f"{rig.receiver_url}/{scenario}", "--fanout", str(fanout),
    )  # fmt: skip
    procs = [rig.receiver, ingress, relay]
    try:
        ingress.start(ready_path="/")
        relay.start(ready_path="/ready")
        sent = load.Sent()
        t0 = time.time()
        w0, w1 = t0 + WARMUP_S, t0 + WARMUP_S + SKELETON_WINDOW_S
        generator = asyncio.create_task(
            load.closed_loop(
                load.http_sender(rig.session, ingress.url(), "unused"),
                until=w1, concurrency=CONCURRENCY, fanout=fanout, arrivals=rig.arrivals,
                scenario=scenario, max_backlog=MAX_BACKLOG, sent=sent,
            )
        )  # fmt: skip
        await sleep_until(w0)
        before, arrived_before = snapshot(procs), (await rig.arrivals.refresh()).get(scenario, 0)
        await sleep_until(w1)
        after, arrived_after = snapshot(procs), (await rig.arrivals.refresh()).get(scenario, 0)
        await generator
    finally:
        for proc in (ingress, relay):
            await asyncio.to_thread(proc.stop)
        await rig.env.delete_queue(queue)
    deliveries = arrived_after - arrived_before
    return Skeleton(
        fanout=fanout,
        deliveries_per_s=deliveries / (after.t - before.t),
        request_errors=sent.errors,
        cpu=cpu_report(before, after, deliveries),
    )
