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

from benchmarks import load
from benchmarks.common import log, sleep_until
from benchmarks.config import FANOUT, WARMUP_S
from benchmarks.measure import cpu_report, snapshot
from benchmarks.results import CpuReport
from benchmarks.rig import Pipeline, Rig, Run

# The bench's orgs (benchmarks/config.py): one endpoint, or FANOUT of them.
ORG_OF_FANOUT = {1: "lat", FANOUT: "fanout"}


async def measure(pipe: Pipeline, rate: float, fanout: int, seconds: float) -> CpuReport:
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
    before, arrived_before = snapshot(pipe.processes()), rig.arrivals.get(org)
    await sleep_until(t0 + WARMUP_S + seconds)
    after, arrived_after = snapshot(pipe.processes()), rig.arrivals.get(org)
    await generator
    await rig.wait_arrivals(org, base + len(sent.events) * fanout, timeout=60)
    if sent.errors:
        log(f"request errors: {sent.errors}")
    return cpu_report(before, after, arrived_after - arrived_before)


def print_report(report: CpuReport, rate: float, fanout: int) -> None:
    deliveries = rate * fanout
    print(f"steady load: {rate:g} events/s × fan-out {fanout} = {deliveries:g} deliveries/s")
    print(f"window {report.window_s} s; machine cores busy {report.system_cores_busy}")
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
