"""A real Python peer beside hookpost: django-webhook 0.0.15 on Celery, as its docs set it up.

Its Django project (benchmarks/peer/) has a view that creates a model instance; django-webhook's
post_save signal turns that into one Celery task per subscribed webhook (`fire_webhook.delay`),
and a Celery worker POSTs each one, signed with the webhook's secret, to the same receiver as
hookpost's phases. The same load generator drives it (benchmarks/load.py): the closed loop at
1 endpoint and at fan-out 10, then the open loop at 10 events/s and at 50 % of its own maximum.

It runs in a venv of its own (.hookpost/peer-venv, from benchmarks/peer/requirements.txt; reused
while the requirements are unchanged), on the shared RabbitMQ under the prefix
`<run>_peer` (its queue, control and event exchanges) and in its own database `<run>_peer`;
both are deleted at the end.

    web     gunicorn, sync workers, as many as cores
    worker  `celery -A peerproj worker -Q <queue>` (the docs' command), prefork pool with
            PEER_CONCURRENCY processes: the task blocks on PostgreSQL and on the POST, so more
            processes than cores keep the cores busy while others wait (Celery's docs: more
            pool processes for I/O-bound tasks, up to where they start to cost)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import psutil

from benchmarks import load
from benchmarks.common import log, percentiles, sleep_until
from benchmarks.config import (
    CONCURRENCY,
    FANOUT,
    FLOOR_RATE,
    LATENCY_S,
    MAX_BACKLOG,
    WARMUP_S,
    WINDOW_S,
)
from benchmarks.measure import cpu_report, snapshot
from benchmarks.results import Peer, PeerLatency, PeerThroughput
from benchmarks.rig import Rig
from harness.env import FreshEnv
from harness.process import ROOT, Process, free_port
from harness.waiting import poll

PEER_DIR = ROOT / "benchmarks" / "peer"
REQUIREMENTS = PEER_DIR / "requirements.txt"
VENV = ROOT / ".hookpost" / "peer-venv"
CORES = os.cpu_count() or 1
PEER_CONCURRENCY = int(os.environ.get("BENCH_PEER_CONCURRENCY", 8))
# the receiver's groups of the peer's webhooks (benchmarks/peer/orders/management/commands)
GROUPS = {1: ("single", "peer1"), FANOUT: ("fanout", "peerfan")}


def pinned(*names: str) -> str:
    """'name version, …' as benchmarks/peer/requirements.txt pins them."""
    pins = dict(
        line.split("==", 1) for line in REQUIREMENTS.read_text().splitlines() if "==" in line
    )
    return ", ".join(f"{name} {pins[name]}" for name in names)


def ensure_venv() -> Path:
    """The peer's venv, made (or remade when its requirements changed); its bin directory."""
    installed = VENV / "requirements.txt"
    if not (installed.exists() and installed.read_bytes() == REQUIREMENTS.read_bytes()):
        log(f"peer: venv {VENV.relative_to(ROOT)} from {REQUIREMENTS.relative_to(ROOT)}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--no-deps", "-r", str(REQUIREMENTS)], check=True)
        installed.write_bytes(REQUIREMENTS.read_bytes())
    return VENV / "bin"


@dataclass
class PeerStack:
    name: str  # its database and its broker prefix
    rig: Rig
    database: FreshEnv
    env: dict[str, str]
    web: Process
    worker: Process

    @classmethod
    async def start(cls, rig: Rig) -> PeerStack:
        bin_dir = await asyncio.to_thread(ensure_venv)
        name = f"{rig.env.name}_peer"
        database = FreshEnv(name, base_dsn=rig.env.base_dsn)
        env = {
            **os.environ,
            "PYTHONPATH": str(PEER_DIR),
            "DJANGO_SETTINGS_MODULE": "peerproj.settings",
            "PEER_DATABASE_URL": database.dsn,
            "PEER_AMQP_URL": rig.env.amqp_url,
            "PEER_PREFIX": name,
        }
        port, logs = free_port(), rig.run.logs
        web = Process(
            "peer-web",
            [str(bin_dir / "gunicorn"), "peerproj.wsgi:application", "--workers", str(CORES),
             "--bind", f"127.0.0.1:{port}"],
            env=env, port=port, log_path=logs / "peer-web.log",
        )  # fmt: skip
        worker = Process(
            "peer-worker",
            [str(bin_dir / "celery"), "-A", "peerproj", "worker", "-Q", name,
             "--concurrency", str(PEER_CONCURRENCY)],
            env=env, port=0, log_path=logs / "peer-worker.log",
        )  # fmt: skip
        stack = cls(name, rig, database, env, web, worker)
        try:
            await stack.database.create_database(hookpost_schema=False)
            for argv in (["migrate", "--noinput"], ["peer_webhooks", rig.receiver_url]):
                await asyncio.to_thread(_django, bin_dir, env, *argv)
            await asyncio.to_thread(web.start, "/readyz")
            worker.start(ready_path=None)
            await stack._consuming()
        except BaseException:
            await stack.close()
            raise
        return stack

    async def _consuming(self) -> None:
        """Until the worker consumes its queue (a consumer on it): it has no HTTP port."""
        connection = await aio_pika.connect(self.rig.env.amqp_url)
        async with connection:

            async def consumers() -> int:
                if not self.worker.running:
                    raise RuntimeError(f"peer worker exited:\n{self.worker.log_tail()}")
                channel = await connection.channel()  # a failed passive declare closes it
                try:
                    queue = await channel.declare_queue(self.name, passive=True)
                    return queue.declaration_result.consumer_count or 0
                except aio_pika.exceptions.ChannelClosed:
                    return 0
                finally:
                    if not channel.is_closed:
                        await channel.close()

            held, _ = await poll(consumers, lambda n: n > 0, timeout=60, interval=0.2)
        if not held:
            raise TimeoutError(f"peer worker not consuming:\n{self.worker.log_tail()}")

    def url(self, fanout: int) -> str:
        return self.web.url(f"/{GROUPS[fanout][0]}")

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds of each side, its children included (gunicorn's and Celery's pool)."""
        return {p.name: _tree_cpu_s(p) for p in (self.web, self.worker)}

    async def close(self) -> None:
        for proc in (self.worker, self.web):
            await asyncio.to_thread(proc.stop)
        try:
            await self.database.drop_database()
            await _delete_broker_objects(self.rig.env.amqp_url, self.name)
        except Exception as exc:  # leave the run's figures intact
            log(f"peer cleanup failed: {exc!r}")


def _django(bin_dir: Path, env: dict[str, str], *argv: str) -> None:
    """A management command of the peer's project; its own error output if it fails."""
    done = subprocess.run(
        [str(bin_dir / "python"), "-m", "django", *argv], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"django-admin {argv[0]} exited {done.returncode}:\n{done.stderr[-3000:]}"
        )


def _tree_cpu_s(proc: Process) -> float:
    if not proc.running:
        return 0.0
    root = psutil.Process(proc.pid)
    total = 0.0
    for p in (root, *root.children(recursive=True)):
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def _delete_broker_objects(amqp_url: str, prefix: str) -> None:
    """The queue and the exchanges Celery declared under the peer's prefix."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(prefix)
        for exchange in (prefix, f"{prefix}.pidbox", f"reply.{prefix}.pidbox", f"{prefix}.ev"):
            await channel.exchange_delete(exchange)


async def throughput(peer: PeerStack, fanout: int) -> PeerThroughput:
    rig, scenario = peer.rig, GROUPS[fanout][1]
    sent, base = load.Sent(), rig.arrivals.get(scenario)
    t0 = time.time()
    w0, w1 = t0 + WARMUP_S, t0 + WARMUP_S + WINDOW_S
    generator = asyncio.create_task(
        load.closed_loop(
            load.http_sender(rig.session, peer.url(fanout), "unused"),
            until=w1, concurrency=CONCURRENCY, fanout=fanout, arrivals=rig.arrivals,
            scenario=scenario, max_backlog=MAX_BACKLOG, sent=sent,
        )
    )  # fmt: skip
    await sleep_until(w0)
    counted = [(snapshot([]), peer.cpu_s(), (await rig.arrivals.refresh()).get(scenario, 0))]
    await sleep_until(w1)
    counted.append((snapshot([]), peer.cpu_s(), (await rig.arrivals.refresh()).get(scenario, 0)))
    await generator
    (before, cpu0, n0), (after, cpu1, n1) = counted
    seconds, deliveries = after.t - before.t, n1 - n0
    # The backlog drains at the measured rate; what stays queued would be counted in the
    # next phase's latency. Wait for it (2 × its expected drain time, at most 5 minutes).
    drain_s = min(300.0, max(60.0, 2 * MAX_BACKLOG * seconds / max(deliveries, 1)))
    drained = await rig.wait_arrivals(scenario, base + len(sent.events) * fanout, drain_s)
    report = cpu_report(before, after, deliveries)
    per_k = 1000.0 / deliveries if deliveries else float("nan")
    peer_cpu = {name: round((cpu1[name] - cpu) * per_k, 3) for name, cpu in cpu0.items()}
    return PeerThroughput(
        fanout=fanout,
        deliveries_per_s=deliveries / seconds,
        events_accepted_per_s=sum(1 for e in sent.events if before.t <= e[1] < after.t) / seconds,
        request_errors=sent.errors,
        drained=drained,
        cpu_s_per_1000_deliveries=peer_cpu | report.cpu_s_per_1000_deliveries,
        system_cores_busy=report.system_cores_busy,
    )


async def latency(peer: PeerStack, rate: float) -> PeerLatency:
    """Open loop at `rate` through the 1-endpoint view: send → first arrival, per event."""
    rig, scenario = peer.rig, GROUPS[1][1]
    sent, base = load.Sent(), rig.arrivals.get(scenario)
    await load.open_loop(
        rig.session, peer.url(1), "unused",
        rate_per_s=rate, duration_s=LATENCY_S, max_open=256, sent=sent,
    )  # fmt: skip
    await rig.wait_arrivals(scenario, base + len(sent.events), timeout=90)
    arrived: dict[str | None, float] = {}
    for record in (await rig.records(scenario))[base:]:
        arrived.setdefault(record.event_id, record.arrived)
    e2e = [(arrived[e[2]] - e[0]) * 1000 for e in sent.events if e[2] in arrived]
    return PeerLatency(
        offered_events_per_s=rate,
        events=len(sent.events),
        delivered=len(e2e),
        request_errors=sent.errors,
        e2e_ms=percentiles(e2e, "p50", "p95", "p99"),
        accept_ms=percentiles([(e[1] - e[0]) * 1000 for e in sent.events], "p50", "p99"),
    )


async def measure(rig: Rig) -> Peer:
    log(f"peer: django-webhook, gunicorn × {CORES}, celery worker × {PEER_CONCURRENCY}")
    peer = await PeerStack.start(rig)
    try:
        found: dict[int, PeerThroughput] = {}
        for fanout in (1, FANOUT):
            log(f"peer throughput, fan-out {fanout}: {WARMUP_S:g} s warm-up, {WINDOW_S:g} s")
            found[fanout] = await throughput(peer, fanout)
            log(f"  {found[fanout].deliveries_per_s:,.0f} deliveries/s")
        lat: list[PeerLatency] = []
        for rate in (FLOOR_RATE, max(5.0, 0.5 * found[1].deliveries_per_s)):
            log(f"peer latency: open loop at {rate:,.0f} events/s for {LATENCY_S:g} s")
            lat.append(await latency(peer, rate))
            e2e = lat[-1].e2e_ms
            log(f"  p50 {e2e['p50']:.1f} ms, p99 {e2e['p99']:.1f} ms")
    finally:
        await peer.close()
    return Peer(
        version=pinned("django-webhook", "Django", "celery", "gunicorn"),
        setup=f"gunicorn sync × {CORES}; celery worker prefork × {PEER_CONCURRENCY}",
        throughput_1=found[1],
        throughput_fanout=found[FANOUT],
        latency_floor=lat[0],
        latency=lat[1],
    )
