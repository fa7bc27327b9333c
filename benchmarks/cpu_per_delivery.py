"""`python -m benchmarks.cpu_per_delivery`: ms of CPU per delivery of each component under a
steady load, the input of the sizing guide (docs/operations.md "Sizing").

    python -m benchmarks.cpu_per_delivery --rate 100 --fanout 10 --seconds 30

The bench's stack (api, dispatcher, 2 senders; benchmarks/rig.py), an open loop of
`POST /api/v1/events` at `--rate` events/s to an org with `--fanout` endpoints on the bench
receiver (200 at once), and CPU seconds per process over a window after a warm-up
(benchmarks/measure.py: each service's process, RabbitMQ's beam.smp and PostgreSQL's whole
server, this load generator and the receiver). A steady rate below the maximum, not a closed
loop: a sizing wants the cost of a delivery at a load the servers hold, not at saturation,
where queueing inflates some components and starves others.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

from benchmarks import load
from benchmarks.common import log, sleep_until
from benchmarks.config import FANOUT, WARMUP_S
from benchmarks.measure import cpu_report, snapshot
from benchmarks.results import CpuReport
from benchmarks.rig import Pipeline, Rig, Run

# The bench's orgs (benchmarks/config.py): one endpoint, or FANOUT of them.
ORG_OF_FANOUT = {1: "lat", FANOUT: "fanout"}


@dataclass(frozen=True)
class Steady:
    cpu: CpuReport
    deliveries: int
    wal_bytes: int  # the whole server's: its other databases' writes count too


async def _wal_lsn(pipe: Pipeline) -> str:
    return str(await pipe.pool.fetchval("SELECT pg_current_wal_lsn()"))


async def measure(pipe: Pipeline, rate: float, fanout: int, seconds: float) -> Steady:
    rig, org = pipe.rig, ORG_OF_FANOUT[fanout]
    sent = load.Sent()
    base = rig.arrivals.get(org)
    t0 = time.time()
    loop = load.open_loop(
        rig.session, pipe.api_url, pipe.token(org),
        rate_per_s=rate, duration_s=WARMUP_S + seconds + 2, max_open=200, sent=sent,
    )  # fmt: skip
    generator = asyncio.create_task(loop)
    await sleep_until(t0 + WARMUP_S)
    lsn_before = await _wal_lsn(pipe)
    before, arrived_before = snapshot(pipe.processes()), rig.arrivals.get(org)
    await sleep_until(t0 + WARMUP_S + seconds)
    after, arrived_after = snapshot(pipe.processes()), rig.arrivals.get(org)
    wal = await pipe.pool.fetchval(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint", lsn_before
    )
    await generator
    await rig.wait_arrivals(org, base + len(sent.events) * fanout, timeout=60)
    if sent.errors:
        log(f"request errors: {sent.errors}")
    deliveries = arrived_after - arrived_before
    return Steady(cpu_report(before, after, deliveries), deliveries, int(wal))


def print_report(steady: Steady, rate: float, fanout: int) -> None:
    report = steady.cpu
    print(f"steady load: {rate:g} events/s × fan-out {fanout} = {rate * fanout:g} deliveries/s")
    print(
        f"window {report.window_s} s: {steady.deliveries} deliveries "
        f"({steady.deliveries / report.window_s:.0f}/s); machine cores busy "
        f"{report.system_cores_busy}; WAL {steady.wal_bytes / max(steady.deliveries, 1):.0f} "
        "bytes per delivery (whole server)"
    )
    print(f"{'component':<28} {'ms CPU / delivery':>18} {'cores busy':>11}")
    for name, ms in report.cpu_s_per_1000_deliveries.items():
        print(f"{name:<28} {ms:>18.3f} {report.cores_busy[name]:>11.2f}")


async def main(rate: float, fanout: int, seconds: float) -> None:
    rig = await Rig.start(Run.new())
    pipe: Pipeline | None = None
    try:
        pipe = await Pipeline.start(rig)
        log(f"steady load: {rate:g} events/s, fan-out {fanout}, {seconds:g} s measured")
        print_report(await measure(pipe, rate, fanout, seconds), rate, fanout)
    finally:
        if pipe is not None:
            await pipe.close()
        await rig.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="events/s")
    parser.add_argument("--fanout", type=int, choices=sorted(ORG_OF_FANOUT), default=FANOUT)
    parser.add_argument("--seconds", type=float, default=30.0, help="the measured window")
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.fanout, args.seconds))
