"""`python -m benchmarks.cpu_per_delivery`: ms of CPU per delivery of each component under a
steady load, the input of the sizing guide (docs/operations.md "Sizing").

    python -m benchmarks.cpu_per_delivery --rate 100 --fanout 10 --seconds 30
    python -m benchmarks.cpu_per_delivery --rate 40 --through-senders   every first attempt
                                                  through the sender queue: a sender's cost

The bench's stack (api, dispatcher, 2 senders; benchmarks/rig.py), an open loop of
`POST /api/v1/events` at `--rate` events/s to an org with `--fanout` endpoints on the bench
receiver (200 at once), and CPU seconds per process over a window after a warm-up
(benchmarks/measure.py: each service's process, RabbitMQ, PostgreSQL, this load generator
and the receiver). A steady rate below the maximum, not a closed loop: a sizing wants the
cost of a delivery at a load the servers hold, not at saturation, where queueing inflates
some components and starves others.

The shared RabbitMQ and PostgreSQL on 5672/5432 also serve everyone else's tests, so their
CPU is not this load's alone. By default the stack runs on a private RabbitMQ node and a
private PostgreSQL cluster (chaos/infra.py, on free ports, removed afterwards), and only their
processes count; `--shared` measures on the shared servers (then their whole CPU counts).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, replace

import psutil

from benchmarks import load
from benchmarks.common import log, sleep_until
from benchmarks.config import FANOUT, WARMUP_S
from benchmarks.measure import CpuSnapshot, cpu_report, snapshot
from benchmarks.results import CpuReport
from benchmarks.rig import Pipeline, Rig, Run
from chaos.infra import PrivateInfra
from harness.process import free_port

# The bench's orgs (benchmarks/config.py): one endpoint, or FANOUT of them.
ORG_OF_FANOUT = {1: "lat", FANOUT: "fanout"}


# RabbitMQ and PostgreSQL are shared with whatever else runs here; their CPU and WAL over a
# window with this stack idle, just before the load, are subtracted as the background.
IDLE_S = 10.0


@dataclass(frozen=True)
class Steady:
    cpu: CpuReport
    deliveries: int  # arrived at the receiver within the window
    events: int  # accepted by the api within the window: × fan-out ≈ deliveries when steady
    wal_bytes: int  # the whole server's: its other databases' writes count too
    idle: CpuReport  # the same processes over IDLE_S before the load
    idle_wal_bytes_per_s: float

    def marginal_ms(self, component: str) -> float:
        """ms of CPU per delivery above what the component spent idle."""
        spent = self.cpu.cpu_s[component] - self.idle.cores_busy[component] * self.cpu.window_s
        return 1000 * spent / max(self.deliveries, 1)

    def marginal_wal_bytes(self) -> float:
        background = self.idle_wal_bytes_per_s * self.cpu.window_s
        return (self.wal_bytes - background) / max(self.deliveries, 1)


async def _wal_lsn(pipe: Pipeline) -> int:
    """The server's WAL position in bytes (asyncpg reads a pg_lsn as an int)."""
    return int(await pipe.pool.fetchval("SELECT pg_current_wal_lsn()"))


async def _wal_since(pipe: Pipeline, lsn: int) -> int:
    return await _wal_lsn(pipe) - lsn


async def measure(
    pipe: Pipeline, rate: float, fanout: int, seconds: float, infra: PrivateInfra | None
) -> Steady:
    rig, org = pipe.rig, ORG_OF_FANOUT[fanout]

    def snap() -> CpuSnapshot:
        taken = snapshot(pipe.processes())
        return taken if infra is None else _only(taken, *_servers_of(infra))

    lsn_idle, idle_before = await _wal_lsn(pipe), snap()
    await asyncio.sleep(IDLE_S)
    idle_wal, idle_after = await _wal_since(pipe, lsn_idle), snap()
    idle = cpu_report(idle_before, idle_after, 1)
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
    before, arrived_before = snap(), rig.arrivals.get(org)
    await sleep_until(t0 + WARMUP_S + seconds)
    after, arrived_after = snap(), rig.arrivals.get(org)
    wal = await _wal_since(pipe, lsn_before)
    await generator
    await rig.wait_arrivals(org, base + len(sent.events) * fanout, timeout=60)
    if sent.errors:
        log(f"request errors: {sent.errors}")
    deliveries = arrived_after - arrived_before
    report = cpu_report(before, after, deliveries)
    events = sum(1 for e in sent.events if before.t <= e[1] < after.t)
    return Steady(report, deliveries, events, wal, idle, idle_wal / idle.window_s)


def print_report(steady: Steady, rate: float, fanout: int) -> None:
    report = steady.cpu
    print(f"steady load: {rate:g} events/s × fan-out {fanout} = {rate * fanout:g} deliveries/s")
    print(
        f"window {report.window_s} s: {steady.events} events accepted, {steady.deliveries} "
        f"deliveries ({steady.deliveries / report.window_s:.0f}/s); machine cores busy "
        f"{report.system_cores_busy} (idle before: {steady.idle.system_cores_busy}); WAL per "
        f"delivery {steady.wal_bytes / max(steady.deliveries, 1):.0f} bytes, "
        f"{steady.marginal_wal_bytes():.0f} above the background"
    )
    print(f"{'component':<28} {'ms CPU / delivery':>18} {'above idle':>11} {'cores busy':>11}")
    for name, ms in report.cpu_s_per_1000_deliveries.items():
        marginal = steady.marginal_ms(name)
        print(f"{name:<28} {ms:>18.3f} {marginal:>11.3f} {report.cores_busy[name]:>11.2f}")


def _servers_of(infra: PrivateInfra) -> tuple[set[int], set[int]]:
    """The private node's beam.smp and the private cluster's postmaster and its children."""
    beams = {
        p.pid
        for p in psutil.process_iter(["name", "cmdline"])
        if (p.info["name"] or "").startswith("beam")
        and infra.rabbit.node.split("@")[0] in " ".join(p.info["cmdline"] or [])
    }
    postmaster = psutil.Process(
        int((infra.postgres.data / "postmaster.pid").read_text().split()[0])
    )
    return beams, {postmaster.pid, *(c.pid for c in postmaster.children(recursive=True))}


def _only(snap: CpuSnapshot, beams: set[int], postgres: set[int]) -> CpuSnapshot:
    return replace(
        snap,
        rabbitmq={pid: cpu for pid, cpu in snap.rabbitmq.items() if pid in beams},
        postgres={pid: cpu for pid, cpu in snap.postgres.items() if pid in postgres},
    )


async def main(rate: float, fanout: int, seconds: float, shared: bool, senders: bool) -> None:
    run = Run.new()
    if senders:  # every first attempt through the sender queue: what a sender costs
        run.env.overrides["HOOKPOST_DISPATCHER_FIRST_ATTEMPTS"] = "0"
    infra: PrivateInfra | None = None
    if not shared:
        ports = {"amqp": free_port(), "dist": free_port(), "pg": free_port()}
        infra = PrivateInfra(run.run_id, ports)
        await asyncio.to_thread(infra.start)
        run.env.amqp_url, run.env.base_dsn = infra.rabbit.url, infra.postgres.dsn()
    rig: Rig | None = None
    pipe: Pipeline | None = None
    try:
        rig = await Rig.start(run)
        pipe = await Pipeline.start(rig)
        log(f"steady load: {rate:g} events/s, fan-out {fanout}, {seconds:g} s measured")
        steady = await measure(pipe, rate, fanout, seconds, infra)
        print_report(steady, rate, fanout)
        where = "the shared servers, whole" if infra is None else "private, this run's alone"
        print(f"rabbitmq and postgres: {where}")
    finally:
        if pipe is not None:
            await pipe.close()
        if rig is not None:
            await rig.close()
        if infra is not None:
            await asyncio.to_thread(infra.close)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="events/s")
    parser.add_argument("--fanout", type=int, choices=sorted(ORG_OF_FANOUT), default=FANOUT)
    parser.add_argument("--seconds", type=float, default=30.0, help="the measured window")
    parser.add_argument("--shared", action="store_true", help="on the shared 5672/5432 servers")
    parser.add_argument(
        "--through-senders", action="store_true", help="HOOKPOST_DISPATCHER_FIRST_ATTEMPTS=0"
    )
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.fanout, args.seconds, args.shared, args.through_senders))
