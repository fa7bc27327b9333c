"""What a bench window costs: CPU per process and per server, PostgreSQL connections per
service, RSS over time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg
import psutil

from benchmarks.results import CpuReport, PgConnections, ServiceConnections
from harness.process import Process


def cpu_by_pid(name_prefixes: tuple[str, ...]) -> dict[int, float]:
    """CPU seconds of every live process whose name starts with one of the prefixes."""
    found: dict[int, float] = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        name = proc.info["name"] or ""
        times = proc.info["cpu_times"]
        if times is not None and name.startswith(name_prefixes):
            found[proc.pid] = times.user + times.system
    return found


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two cpu_by_pid() snapshots (processes born in between count whole)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


@dataclass(frozen=True)
class CpuSnapshot:
    t: float
    services: dict[str, float]  # CPU seconds of each process the bench started
    services_sys: dict[str, float]  # of which in the kernel
    runqueue: dict[str, float]  # seconds each main thread waited for a CPU
    bench: float  # this process: the load generator
    rabbitmq: dict[int, float]  # the whole server, by pid
    postgres: dict[int, float]
    system_busy: float  # every CPU's non-idle seconds


def snapshot(procs: Iterable[Process]) -> CpuSnapshot:
    alive = [p for p in procs if p.running]
    sys_times = psutil.cpu_times()
    return CpuSnapshot(
        t=time.time(),
        services={p.name: p.cpu_s() for p in alive},
        services_sys={p.name: p.sys_s() for p in alive},
        runqueue={p.name: p.runqueue_wait_s() for p in alive},
        bench=sum(psutil.Process().cpu_times()[:2]),
        rabbitmq=cpu_by_pid(("beam",)),
        postgres=cpu_by_pid(("postgres",)),
        system_busy=sum(sys_times) - sys_times.idle - getattr(sys_times, "iowait", 0.0),
    )


def cpu_report(before: CpuSnapshot, after: CpuSnapshot, deliveries: int) -> CpuReport:
    per_k = 1000.0 / deliveries if deliveries else float("nan")
    seconds = after.t - before.t
    services = {
        name: after.services[name] - cpu
        for name, cpu in before.services.items()
        if name in after.services
    }
    groups = {
        **services,
        "load generator (bench)": after.bench - before.bench,
        "rabbitmq (whole server)": cpu_delta(before.rabbitmq, after.rabbitmq),
        "postgres (whole server)": cpu_delta(before.postgres, after.postgres),
    }
    kernel_share = {
        name: round((after.services_sys[name] - sys_s) / services[name], 2)
        for name, sys_s in before.services_sys.items()
        if name in services and services[name] > 0
    }
    system = after.system_busy - before.system_busy
    other = system - sum(groups.values())
    return CpuReport(
        window_s=round(seconds, 2),
        cpu_s={k: round(v, 2) for k, v in groups.items()},
        cpu_s_per_1000_deliveries={k: round(v * per_k, 3) for k, v in groups.items()},
        cores_busy={k: round(v / seconds, 2) for k, v in groups.items()},
        kernel_share_of_service_cpu=kernel_share,
        runqueue_wait_per_s={
            name: round((after.runqueue[name] - wait) / seconds, 2)
            for name, wait in before.runqueue.items()
            if name in after.runqueue
        },
        system_cores_busy=round(system / seconds, 2),
        other_processes_cores_busy=round(max(other, 0.0) / seconds, 2),
    )


class PgActivity:
    """Samples pg_stat_activity of the bench database: busy connections per service."""

    SQL = (
        "SELECT client_port, state, wait_event FROM pg_stat_activity"
        " WHERE datname = $1 AND pid <> pg_backend_pid() AND client_port IS NOT NULL"
    )

    def __init__(self, pool: asyncpg.Pool, database: str) -> None:
        self._pool = pool
        self._database = database
        self._samples: list[list[tuple[int, str, str | None]]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> PgActivity:
        async def loop() -> None:
            while True:
                rows = await self._pool.fetch(self.SQL, self._database)
                self._samples.append([(r[0], r[1], r[2]) for r in rows])
                await asyncio.sleep(0.25)

        self._task = asyncio.create_task(loop())
        return self

    async def stop(self, services: Iterable[Process]) -> PgConnections:
        """Stop sampling; each connection is attributed to the service that holds it now."""
        assert self._task is not None
        self._task.cancel()
        owners: dict[int, str] = {}
        for proc in services:
            if proc.running:
                for port in proc.client_ports(5432):
                    owners[port] = proc.name
        report: dict[str, ServiceConnections] = {}
        n = max(1, len(self._samples))
        for name in sorted(set(owners.values())):
            opened = busy = 0
            waits: dict[str, int] = {}
            for sample in self._samples:
                for port, state, wait in sample:
                    if owners.get(port) != name:
                        continue
                    opened += 1
                    if state != "idle":
                        busy += 1
                        waits[wait or "CPU"] = waits.get(wait or "CPU", 0) + 1
            report[name] = ServiceConnections(
                connections_open_mean=round(opened / n, 1),
                connections_busy_mean=round(busy / n, 1),
                busy_by_wait_event=dict(sorted(waits.items(), key=lambda kv: -kv[1])[:4]),
            )
        return PgConnections(samples=len(self._samples), by_service=report)


class RssSamples:
    """Each process's RSS (MB) every 0.25 s, from `start` until `stop`."""

    def __init__(self, procs: list[Process]) -> None:
        self._procs = procs
        self.samples: dict[str, list[float]] = {p.name: [] for p in procs}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> RssSamples:
        async def loop() -> None:
            while True:
                for proc in self._procs:
                    self.samples[proc.name].append(proc.rss_mb())
                await asyncio.sleep(0.25)

        self._task = asyncio.create_task(loop())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
