"""`make bench`: ceilings, then the whole pipeline end to end, in one run on this machine.

    1. ceilings     broker round trips (consumer in its own process), aiohttp POSTs to the
                    receiver (its own process), PostgreSQL inserts     (benchmarks/ceilings.py);
                    then the design's own ceiling: the same load through HTTP in, one
                    confirmed broker round trip, HTTP out, with no database and no logic,
                    1 endpoint and fan-out 10: 5 s warm-up, 15 s measured (benchmarks/skeleton.py)
    2. stack        own database + broker prefix; api, dispatcher, 2 senders as subprocesses
    3. throughput   1 endpoint per event, then fan-out 10: 5 s warm-up, 30 s measured
                    (CPU per service), then 10 s of py-spy on api, dispatcher, sender-1
    4. latency      open loop at 50 % of the measured 1-endpoint maximum
                    (phases 3 and 4: the dispatcher makes first attempts itself, the default)
    5. concurrency  the dispatcher is replaced by one that hands every first attempt to the
                    sender queue (HOOKPOST_DISPATCHER_FIRST_ATTEMPTS=0): these phases measure
                    sender replicas.
                    receiver takes 200 ms; senders paused while 9,000 deliveries queue, then
                    resumed: in-flight POSTs, throughput and RSS per replica
                    (default prefetch, then a second sender pair with prefetch 600; then
                    the same pair against a receiver that takes 2,000 ms, where the
                    in-flight count is bounded by prefetch rather than by CPU)
    6. retries      the second pair runs with HOOKPOST_RETRY_DELAY_SCALE = 1/60 (60 s → 1 s);
                    an endpoint answers 500 then 200: lateness of attempt 2 vs its schedule

All figures go to bench-results/bench-<run>.json, plots to docs/bench/*.png; the last line
printed is `bench: e2e_dps=… fanout_dps=… p50_ms=… p99_ms=… ceiling_broker=…
ceiling_http=… ratio=…` (ratio = e2e deliveries/s ÷ broker round trips/s).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import aiormq
import asyncpg
import numpy as np
import orjson
import psutil

from benchmarks import ceilings, load, plots
from benchmarks import profile as pyspy
from benchmarks.cpu import cpu_by_pid, cpu_delta
from benchmarks.statements import StatementStats
from harness.env import FreshEnv
from harness.orgs import create_orgs
from harness.process import ROOT, Process, free_port
from harness.receiver import ReceiverClient, Record
from harness.receiver.standalone import spawn
from harness.services import hookpost
from libs.infra.settings import Settings

WARMUP_S = float(os.environ.get("BENCH_WARMUP_S", 5))
WINDOW_S = float(os.environ.get("BENCH_WINDOW_S", 30))
PROFILE_S = int(os.environ.get("BENCH_PROFILE_S", 8))
AMQP_WINDOW_S = float(os.environ.get("BENCH_AMQP_WINDOW_S", 20))
SKELETON_WINDOW_S = float(os.environ.get("BENCH_SKELETON_WINDOW_S", 15))
LATENCY_S = float(os.environ.get("BENCH_LATENCY_S", 20))
FLOOR_RATE = 10.0  # events/s: a nearly idle machine, the latency of the path itself
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", 48))  # open requests to the api
# Dispatcher replicas in the throughput and latency phases (prod runs 3; the bench's stack 1).
DISPATCHERS = int(os.environ.get("BENCH_DISPATCHERS", 1))
MAX_BACKLOG = 2000  # deliveries accepted but not yet received (backpressure limit: 10,000)
SLOW_EVENTS = 600  # × 10 endpoints = 6,000 deliveries queued while the senders are paused
RETRY_EVENTS = 300
RETRY_SCALE = 1 / 60  # the 60 s first tier of A/B/C endpoints becomes 1,000 ms
BIG_PREFETCH = 600
DEFAULT_PREFETCH = Settings.model_fields["sender_prefetch"].default
FANOUT = 10
# How the receiver answers each scenario (harness/receiver/behaviours.py); others: 200 at once.
# slower: in flight is bounded by prefetch rather than by CPU
SLOW_S = {"slow": 0.2, "slower": 2.0}
RECEIVER_ROUTES = {**{k: f"slow:{v}" for k, v in SLOW_S.items()}, "flaky": "first-fails"}

OUT = ROOT / "bench-results"
DOCS = ROOT / "docs" / "bench"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pct(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


async def sleep_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


class Ctx:
    def __init__(self, env: FreshEnv, run_id: str, logs: Path) -> None:
        self.env = env
        self.run_id = run_id
        self.logs = logs
        self.rx: Process
        self.api: Process
        self.dispatcher: Process
        self.more_dispatchers: list[Process] = []
        self.senders: list[Process] = []
        self.all: list[Process] = []
        self.session: aiohttp.ClientSession
        self.arrivals: load.ArrivalCounter
        self.orgs: dict[str, dict[str, str]] = {}
        self.profiles_dir = logs / "profiles"
        self.pool: asyncpg.Pool

    @property
    def rx_url(self) -> str:
        return f"http://127.0.0.1:{self.rx.port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api.port}"

    def token(self, org: str) -> str:
        return self.orgs[org]["apiToken"]

    async def records(self, scenario: str) -> list[Record]:
        """The scenario's requests the receiver has answered, in the order they arrived."""
        records = await ReceiverClient(self.session, self.rx_url).records(scenario)
        return [r for r in records if r.answered is not None]

    async def wait_arrivals(self, scenario: str, target: int, timeout: float) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if (await self.arrivals.refresh()).get(scenario, 0) >= target:
                return True
            await asyncio.sleep(0.2)
        return False

    def snapshot(self) -> dict[str, Any]:
        sys_times = psutil.cpu_times()
        return {
            "t": time.time(),
            "services": {p.name: p.cpu_s() for p in self.all if p.running},
            "services_sys": {p.name: p.sys_s() for p in self.all if p.running},
            "runqueue": {p.name: p.runqueue_wait_s() for p in self.all if p.running},
            "bench": sum(psutil.Process().cpu_times()[:2]),
            "rabbitmq": cpu_by_pid(("beam",)),
            "postgres": cpu_by_pid(("postgres",)),
            "system_busy": sum(sys_times) - sys_times.idle - getattr(sys_times, "iowait", 0.0),
        }


def cpu_report(before: dict[str, Any], after: dict[str, Any], deliveries: int) -> dict[str, Any]:
    per_k = 1000.0 / deliveries if deliveries else float("nan")
    seconds = after["t"] - before["t"]
    services = {
        name: after["services"][name] - cpu
        for name, cpu in before["services"].items()
        if name in after["services"]
    }
    groups = {
        **services,
        "load generator (bench)": after["bench"] - before["bench"],
        "rabbitmq (whole server)": cpu_delta(before["rabbitmq"], after["rabbitmq"]),
        "postgres (whole server)": cpu_delta(before["postgres"], after["postgres"]),
    }
    kernel_share = {
        name: round((after["services_sys"][name] - sys_s) / services[name], 2)
        for name, sys_s in before["services_sys"].items()
        if name in services and services[name] > 0
    }
    system = after["system_busy"] - before["system_busy"]
    other = system - sum(groups.values())
    return {
        "window_s": round(seconds, 2),
        "cpu_s": {k: round(v, 2) for k, v in groups.items()},
        "cpu_s_per_1000_deliveries": {k: round(v * per_k, 3) for k, v in groups.items()},
        "cores_busy": {k: round(v / seconds, 2) for k, v in groups.items()},
        "kernel_share_of_service_cpu": kernel_share,
        # seconds per second the service's main thread was runnable but had no CPU
        "runqueue_wait_per_s": {
            name: round((after["runqueue"][name] - wait) / seconds, 2)
            for name, wait in before["runqueue"].items()
            if name in after["runqueue"]
        },
        "system_cores_busy": round(system / seconds, 2),
        "other_processes_cores_busy": round(max(other, 0.0) / seconds, 2),
    }


# ---------------------------------------------------------------------------------- phases


class PgActivity:
    """Samples pg_stat_activity of the bench database: busy connections per service."""

    SQL = (
        "SELECT client_port, state, wait_event FROM pg_stat_activity"
        " WHERE datname = $1 AND pid <> pg_backend_pid() AND client_port IS NOT NULL"
    )

    def __init__(self, ctx: Ctx, pool: asyncpg.Pool) -> None:
        self._ctx = ctx
        self._pool = pool
        self._samples: list[list[tuple[int, str, str | None]]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> PgActivity:
        async def loop() -> None:
            while True:
                rows = await self._pool.fetch(self.SQL, self._ctx.env.name)
                self._samples.append([(r[0], r[1], r[2]) for r in rows])
                await asyncio.sleep(0.25)

        self._task = asyncio.create_task(loop())
        return self

    async def stop(self) -> dict[str, Any]:
        assert self._task is not None
        self._task.cancel()
        owners: dict[int, str] = {}
        for proc in self._ctx.all:
            if proc.running and proc.name != "receiver":
                for port in proc.client_ports(5432):
                    owners[port] = proc.name
        report: dict[str, Any] = {}
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
            report[name] = {
                "connections_open_mean": round(opened / n, 1),
                "connections_busy_mean": round(busy / n, 1),
                "busy_by_wait_event": dict(sorted(waits.items(), key=lambda kv: -kv[1])[:4]),
            }
        return {"samples": len(self._samples), "by_service": report}


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


async def phase_ceilings(ctx: Ctx) -> dict[str, Any]:
    log("ceilings: broker round trips (20,000 × 1 KB, confirms, quorum queue)")
    broker = await ceilings.broker_round_trips_per_s(ctx.env.amqp_url, 20_000)
    log(f"  broker {broker:,.0f}/s; aiohttp POSTs to the receiver process (20,000, 100 open)")
    await ceilings.http_posts_per_s(f"{ctx.rx_url}/warm/x", 2_000, 100)
    http = await ceilings.http_posts_per_s(f"{ctx.rx_url}/ceiling/x", 20_000, 100)
    log(f"  http {http:,.0f}/s; PostgreSQL inserts")
    pg = await ceilings.postgres_inserts_per_s(ctx.env.dsn)
    log(f"  postgres single-row {pg['single_row']:,.0f}/s, batched {pg['batched']:,.0f} rows/s")
    return {"broker_round_trips_per_s": broker, "http_posts_per_s": http, "postgres_inserts": pg}


async def phase_skeleton(ctx: Ctx, fanout: int) -> dict[str, Any]:
    """The design's ceiling here: the same closed loop against benchmarks/skeleton.py (HTTP
    in, one confirmed broker round trip, `fanout` POSTs out; no database, no logic)."""
    scenario = f"skeleton{fanout}"
    queue = f"{ctx.env.name}.skeleton.{fanout}"
    argv = [sys.executable, "-m", "benchmarks.skeleton"]
    common = ["--queue", queue, "--amqp-url", ctx.env.amqp_url]
    ingress_port, relay_port = free_port(), free_port()
    ingress, relay = f"skeleton-ingress-{fanout}", f"skeleton-relay-{fanout}"
    procs = [
        Process(ingress, [*argv, "ingress", "--port", str(ingress_port), *common],
                env=os.environ, port=ingress_port, log_path=ctx.logs / f"{ingress}.log",
                ).start(ready_path="/"),
        Process(relay, [*argv, "relay", "--port", str(relay_port), *common,
                "--receiver", f"{ctx.rx_url}/{scenario}", "--fanout", str(fanout)],
                env=os.environ, port=relay_port, log_path=ctx.logs / f"{relay}.log",
                ).start(ready_path="/ready"),
    ]  # fmt: skip
    ctx.all += procs
    try:
        sent = load.Sent()
        t0 = time.time()
        w0, w1 = t0 + WARMUP_S, t0 + WARMUP_S + SKELETON_WINDOW_S
        generator = asyncio.create_task(
            load.closed_loop(
                load.http_sender(ctx.session, f"http://127.0.0.1:{ingress_port}", "unused"),
                until=w1, concurrency=CONCURRENCY, fanout=fanout, arrivals=ctx.arrivals,
                scenario=scenario, max_backlog=MAX_BACKLOG, sent=sent,
            )
        )  # fmt: skip
        await sleep_until(w0)
        before, arrived_before = ctx.snapshot(), (await ctx.arrivals.refresh()).get(scenario, 0)
        await sleep_until(w1)
        after, arrived_after = ctx.snapshot(), (await ctx.arrivals.refresh()).get(scenario, 0)
        await generator
    finally:
        for proc in procs:
            await asyncio.to_thread(proc.stop)
            ctx.all.remove(proc)
        await ctx.env.delete_queue(queue)
    deliveries = arrived_after - arrived_before
    return {
        "fanout": fanout,
        "deliveries_per_s": deliveries / (after["t"] - before["t"]),
        "request_errors": sent.errors,
        "cpu": cpu_report(before, after, deliveries),
    }


async def subscribe(ctx: Ctx, org: str, scenario: str, count: int) -> None:
    for n in range(count):
        async with ctx.session.post(
            f"{ctx.api_url}/api/v1/webhook-subscriptions",
            headers={"Authorization": f"Bearer {ctx.token(org)}"},
            json={
                "name": f"bench {scenario} {n}",
                "webhookUrl": f"{ctx.rx_url}/{scenario}/{n}",
                "events": ["MAPPING_COMPLETED"],
            },
        ) as response:
            if response.status != 201:
                raise RuntimeError(f"subscription: HTTP {response.status} {await response.text()}")


async def profile_services(
    ctx: Ctx, names: tuple[str, ...], label: str, seconds: int
) -> dict[str, Any]:
    """py-spy on the named services at once, for `seconds`; each one's summary."""
    every = {"api": ctx.api, "dispatcher": ctx.dispatcher, "sender-1": ctx.senders[0]}
    raws = await asyncio.gather(
        *(
            pyspy.record(every[name].pid, ctx.profiles_dir / f"{label}-{name}.txt", seconds)
            for name in names
        )
    )
    return {
        name: pyspy.summarise(raw, seconds) if raw else {"error": "py-spy failed"}
        for name, raw in zip(names, raws, strict=True)
    }


async def phase_throughput(
    ctx: Ctx,
    org: str,
    scenario: str,
    fanout: int,
    *,
    amqp: load.AmqpProducer | None = None,
    window_s: float = WINDOW_S,
    profile: tuple[str, ...] = ("api", "dispatcher", "sender-1"),
) -> dict[str, Any]:
    """Closed-loop load through the API (or straight onto the broker with `amqp`)."""
    sent = load.Sent()
    t0 = time.time()
    w0, w1 = t0 + WARMUP_S, t0 + WARMUP_S + window_s
    base = ctx.arrivals.get(scenario)
    common = {
        "until": w1 + PROFILE_S, "concurrency": CONCURRENCY, "fanout": fanout,
        "arrivals": ctx.arrivals, "scenario": scenario, "max_backlog": MAX_BACKLOG, "sent": sent,
    }  # fmt: skip
    if amqp is None:
        send_one = load.http_sender(ctx.session, ctx.api_url, ctx.token(org))
    else:
        send_one = amqp.sender(ctx.orgs[org]["organizationId"])
    driver = load.closed_loop(send_one, **common)
    generator = asyncio.create_task(driver)
    await sleep_until(w0)
    before = ctx.snapshot()
    activity = PgActivity(ctx, ctx.pool).start()
    statements = await StatementStats(ctx.pool).start()
    await sleep_until(w1)
    after = ctx.snapshot()
    pg_activity = await activity.stop()
    await statements.end()
    profiles = {}
    if PROFILE_S:  # BENCH_PROFILE_S=0: no py-spy
        log(f"  measured window over; py-spy {PROFILE_S} s on {', '.join(profile)}")
        profiles = await profile_services(ctx, profile, scenario, PROFILE_S)
    await generator
    drained = await ctx.wait_arrivals(scenario, base + len(sent.events) * fanout, timeout=45)
    records = await ctx.records(scenario)
    arrivals = np.array([r.arrived for r in records[base:]])
    in_window = int(((arrivals >= before["t"]) & (arrivals < after["t"])).sum())
    seconds = after["t"] - before["t"]
    accepted = sum(1 for e in sent.events if before["t"] <= e[1] < after["t"])
    # deliveries per event: an arrival counted more than once would be a duplicate POST
    per_event: dict[str, int] = {}
    for r in records[base:]:
        per_event[r.event_id] = per_event.get(r.event_id, 0) + 1
    duplicates = sum(n - fanout for n in per_event.values() if n > fanout)
    return {
        "fanout": fanout,
        "door": "POST /api/v1/events" if amqp is None else "AMQP publish to <prefix>.events",
        "deliveries_per_s": in_window / seconds,
        "events_accepted_per_s": accepted / seconds,
        "deliveries_in_window": in_window,
        "events_sent_total": len(sent.events),
        "request_errors": sent.errors,
        "drained": drained,
        "duplicate_posts": duplicates,
        "api_accept_ms": {
            "p50": pct([(e[1] - e[0]) * 1000 for e in sent.events], 50),
            "p99": pct([(e[1] - e[0]) * 1000 for e in sent.events], 99),
        },
        "cpu": cpu_report(before, after, in_window),
        "postgres_connections": pg_activity,
        "postgres_statements": statements.report(in_window),
        "profiles": profiles,
        "_series": {"t0": t0, "w0": before["t"], "w1": after["t"], "arrivals": arrivals},
    }


_STAGES_SQL = """
SELECT e.id,
       extract(epoch FROM e.created_at)::float8 AS stored,
       extract(epoch FROM e.dispatched_at)::float8 AS dispatched,
       extract(epoch FROM a.attempted_at)::float8 AS attempted
FROM events e
JOIN deliveries d ON d.event_id = e.id
JOIN delivery_attempts a ON a.delivery_id = d.id AND a.attempt_number = 1
WHERE e.organization_id = $1
"""


async def latency_stages(
    pool: asyncpg.Pool, org_id: str, sent: list[tuple[float, float, str]], first: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Where the time goes, from the rows' own timestamps (one clock: this machine)."""
    rows = {r["id"]: r for r in await pool.fetch(_STAGES_SQL, org_id)}
    stages: dict[str, list[float]] = {
        "send → event row stored (http, auth, INSERT)": [],
        "stored → dispatched (publish, dispatcher, deliveries, task confirmed)": [],
        "dispatched → POST started (by the dispatcher, or a sender)": [],
        "POST started → arrived at the receiver": [],
    }
    names = list(stages)
    for t_send, _t_ack, event_id in sent:
        row = rows.get(event_id)
        if row is None or event_id not in first or row["dispatched"] is None:
            continue
        marks = [t_send, row["stored"], row["dispatched"], row["attempted"], first[event_id]]
        for name, a, b in zip(names, marks, marks[1:], strict=False):
            stages[name].append((b - a) * 1000)
    return {name: {"p50": pct(v, 50), "p99": pct(v, 99), "n": len(v)} for name, v in stages.items()}


async def phase_latency(
    ctx: Ctx,
    pool: asyncpg.Pool,
    org: str,
    rate: float,
    *,
    duration_s: float = LATENCY_S,
    profile_s: int = PROFILE_S,
) -> dict[str, Any]:
    """Open loop at `rate` for `duration_s` (measured), then `profile_s` more at the same rate
    with py-spy attached, so that the profile shows this regime without perturbing it."""
    sent = load.Sent()
    base = ctx.arrivals.get(org)
    before = ctx.snapshot()
    activity = PgActivity(ctx, ctx.pool).start()
    statements = await StatementStats(pool).start()
    driver = asyncio.create_task(
        load.open_loop(
            ctx.session, ctx.api_url, ctx.token(org),
            rate_per_s=rate, duration_s=duration_s + profile_s, max_open=256, sent=sent,
        )
    )  # fmt: skip
    await asyncio.sleep(duration_s)
    after = ctx.snapshot()
    measured = [e for e in sent.events if e[0] < after["t"]]
    pg_activity = await activity.stop()
    await statements.end()
    profiles = (
        await profile_services(ctx, ("api", "dispatcher", "sender-1"), org, profile_s)
        if profile_s
        else {}
    )
    await driver
    drained = await ctx.wait_arrivals(org, base + len(sent.events), timeout=30)
    first: dict[str, float] = {}
    for r in (await ctx.records(org))[base:]:
        first.setdefault(r.event_id, r.arrived)
    latencies = [(first[e[2]] - e[0]) * 1000 for e in measured if e[2] in first]
    accept = [(e[1] - e[0]) * 1000 for e in measured]
    return {
        "offered_events_per_s": rate,
        "achieved_events_per_s": len(measured) / (after["t"] - before["t"]),
        "events": len(measured),
        "delivered": len(latencies),
        "drained": drained,
        "late_starts": sent.late_starts,
        "request_errors": sent.errors,
        "e2e_ms": {q: pct(latencies, float(q[1:])) for q in ("p50", "p95", "p99")}
        | {"max": max(latencies, default=float("nan"))},
        "api_accept_ms": {q: pct(accept, float(q[1:])) for q in ("p50", "p95", "p99")},
        "stages_ms": await latency_stages(pool, ctx.orgs[org]["organizationId"], measured, first),
        "cpu": cpu_report(before, after, len(latencies)),
        "postgres_connections": pg_activity,
        "postgres_statements": statements.report(len(measured)),
        "profiles": profiles,
        "_latencies": latencies,
    }


async def phase_concurrency(
    ctx: Ctx, pool: asyncpg.Pool, amqp: load.AmqpProducer, label: str, scenario: str = "slow"
) -> dict[str, Any]:
    """Senders paused while 6,000 slow deliveries queue up; resumed; in-flight per replica."""
    org_id = ctx.orgs[scenario]["organizationId"]
    count_sql = "SELECT count(*) FROM deliveries WHERE organization_id = $1"
    already = await pool.fetchval(count_sql, org_id)
    base = ctx.arrivals.get(scenario)
    for sender in ctx.senders:
        sender.pause()
    try:
        sent = await amqp.publish_n(org_id, SLOW_EVENTS)
        expected = len(sent.events) * FANOUT
        for _ in range(300):  # up to 60 s for the dispatcher to insert them all
            if await pool.fetchval(count_sql, org_id) >= already + expected:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # the last inserted deliveries' tasks are being confirmed
    finally:
        before = ctx.snapshot()
        t_resume = time.time()
        for sender in ctx.senders:
            sender.resume()
    rss = RssSamples(ctx.senders).start()
    activity = PgActivity(ctx, ctx.pool).start()
    drained = await ctx.wait_arrivals(scenario, base + expected, timeout=90)
    after = ctx.snapshot()
    pg_activity = await activity.stop()
    await rss.stop()
    ports = {s.name: s.client_ports(ctx.rx.port) for s in ctx.senders}
    rows = (await ctx.records(scenario))[base:]
    starts_all = np.sort(np.array([r.arrived for r in rows]))
    # saturated window: from the first arrival + 0.5 s until 90 % of the deliveries arrived
    s0 = starts_all[0] + 0.5
    s1 = starts_all[int(len(starts_all) * 0.9) - 1]
    grid = np.arange(s0, s1, 0.05)
    replicas: dict[str, Any] = {}
    series: dict[str, Any] = {"t": grid - t_resume}
    for name, own in ports.items():
        mine = [r for r in rows if r.peer_port in own]
        starts = np.sort(np.array([r.arrived for r in mine]))
        ends = np.sort(np.array([r.answered for r in mine]))
        open_now = np.searchsorted(starts, grid, "right") - np.searchsorted(ends, grid, "right")
        finished = int(((ends >= s0) & (ends < s1)).sum())
        series[name] = open_now
        replicas[name] = {
            "deliveries": len(mine),
            "in_flight_mean": float(open_now.mean()) if len(grid) else 0.0,
            "in_flight_p50": pct(open_now, 50),
            "in_flight_max": int(open_now.max()) if len(grid) else 0,
            "deliveries_per_s": finished / (s1 - s0),
            "rss_mb_max": max(rss.samples[name]),
            "rss_mb_start": rss.samples[name][0],
            "connections_to_receiver": len(own),
        }
    unattributed = len(rows) - sum(r["deliveries"] for r in replicas.values())
    return {
        "label": label,
        "endpoint_ms": int(SLOW_S[scenario] * 1000),
        "prefetch": int(ctx.senders[0].env.get("HOOKPOST_SENDER_PREFETCH", DEFAULT_PREFETCH)),
        "deliveries": len(rows),
        "expected": expected,
        "drained": drained,
        "saturated_window_s": float(s1 - s0),
        "total_deliveries_per_s": float(((starts_all >= s0) & (starts_all < s1)).sum() / (s1 - s0)),
        "unattributed_deliveries": unattributed,
        "cpu": cpu_report(before, after, len(rows)),
        "postgres_connections": pg_activity,
        "replicas": replicas,
        "_series": series,
    }


async def phase_slow_room(ctx: Ctx, rate: float, seconds: float = 15.0) -> dict[str, Any]:
    """What the dispatcher's first-attempt room holds against a slow endpoint: fan-out 10 to
    an endpoint that answers after 2 s, open loop at `rate` events/s; attempts made by the
    dispatcher and handed to the senders (its /metrics), its peak RSS, and whether every
    delivery arrived."""
    rss_before = ctx.dispatcher.rss_mb()
    rss = RssSamples([ctx.dispatcher]).start()
    base = (await ctx.arrivals.refresh()).get("slower", 0)
    sent = load.Sent()
    await load.open_loop(
        ctx.session, ctx.api_url, ctx.token("slower"),
        rate_per_s=rate, duration_s=seconds, max_open=200, sent=sent,
    )  # fmt: skip
    arrived = await ctx.wait_arrivals("slower", base + len(sent.events) * FANOUT, timeout=90)
    await rss.stop()
    async with ctx.session.get(f"http://127.0.0.1:{ctx.dispatcher.port}/metrics") as response:
        metrics = await response.text()
    return {
        "events": len(sent.events),
        "request_errors": sent.errors,
        "all_arrived": arrived,
        "made_by_dispatcher": _sample(metrics, "hookpost_dispatcher_first_attempts_total"),
        "handed_to_senders": _sample(metrics, "hookpost_dispatcher_deliveries_published_total"),
        "dispatcher_rss_mb": {
            "before": rss_before,
            "max": max(rss.samples[ctx.dispatcher.name], default=rss_before),
        },
    }


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def phase_retry(ctx: Ctx) -> dict[str, Any]:
    base = ctx.arrivals.get("flaky")
    sent = load.Sent()
    await load.open_loop(
        ctx.session, ctx.api_url, ctx.token("flaky"),
        rate_per_s=100, duration_s=RETRY_EVENTS / 100, max_open=64, sent=sent,
    )  # fmt: skip
    drained = await ctx.wait_arrivals("flaky", base + 2 * len(sent.events), timeout=40)
    by_event: dict[str | None, list[Record]] = {}
    for r in (await ctx.records("flaky"))[base:]:
        by_event.setdefault(r.event_id, []).append(r)
    lateness = []
    for attempts in by_event.values():
        attempts.sort(key=lambda r: r.arrived)
        if len(attempts) >= 2 and attempts[0].status == 500 and attempts[0].answered:
            scheduled = attempts[0].answered + 1.0  # tier 1 = 1,000 ms after the 500
            lateness.append((attempts[1].arrived - scheduled) * 1000)
    return {
        "tier_ms": 1000,
        "events": len(sent.events),
        "retried_deliveries": len(lateness),
        "drained": drained,
        "lateness_ms": {q: pct(lateness, float(q[1:])) for q in ("p50", "p95", "p99")}
        | {"min": min(lateness, default=float("nan")), "max": max(lateness, default=float("nan"))},
        "_lateness": lateness,
    }


# ------------------------------------------------------------------------------------ main


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": psutil.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }


async def versions(ctx: Ctx) -> dict[str, str]:
    conn = await aiormq.connect(ctx.env.amqp_url)
    rabbit = conn.server_properties.get("version", b"?")
    await conn.close()
    pg = await asyncpg.connect(ctx.env.dsn)
    pg_version = await pg.fetchval("SHOW server_version")
    await pg.close()
    return {
        "rabbitmq": rabbit.decode() if isinstance(rabbit, bytes) else str(rabbit),
        "postgresql": pg_version,
    }


ORGS = ["tput", "fanout", "amqp", "floor", "lat", "slow", "slower", "flaky"]
SUBSCRIPTIONS = (
    ("tput", 1), ("fanout", FANOUT), ("amqp", 1), ("floor", 1), ("lat", 1),
    ("slow", FANOUT), ("slower", FANOUT), ("flaky", 1),
)  # fmt: skip


async def start_receiver(ctx: Ctx) -> None:
    """The run's database, receiver and its arrival counter: what the ceilings need."""
    await ctx.env.create_database()
    ctx.rx = spawn(ctx.logs, RECEIVER_ROUTES).start(ready_path="/stats")
    ctx.all.append(ctx.rx)
    ctx.session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=300), timeout=aiohttp.ClientTimeout(total=60)
    )
    ctx.arrivals = load.ArrivalCounter(ctx.session, ctx.rx_url).start()


async def start_services(ctx: Ctx) -> None:
    """api, dispatcher, 2 senders, and the bench's organizations and subscriptions."""
    env = ctx.env
    log("stack: api, dispatcher, 2 senders")
    base_env = env.env()
    ctx.api = service(ctx, "api", "api", base_env)
    ctx.dispatcher = service(ctx, "dispatcher", "dispatcher", base_env)
    ctx.more_dispatchers = [
        service(ctx, f"dispatcher-{chr(ord('a') + i)}", "dispatcher", base_env)
        for i in range(DISPATCHERS - 1)
    ]
    ctx.senders = [service(ctx, f"sender-{i}", "sender", base_env) for i in (1, 2)]
    ctx.all += [ctx.api, ctx.dispatcher, *ctx.more_dispatchers, *ctx.senders]
    ctx.orgs = await create_orgs(base_env, ORGS)
    for org, count in SUBSCRIPTIONS:
        await subscribe(ctx, org, org, count)
    ctx.pool = await asyncpg.create_pool(env.dsn, min_size=1, max_size=3)


async def stop_stack(ctx: Ctx) -> dict[str, int | None]:
    """Stop what start_receiver and start_services started (however far they got); each
    process's exit code."""
    log("teardown")
    if getattr(ctx, "arrivals", None):
        await ctx.arrivals.stop()
    if getattr(ctx, "session", None):
        await ctx.session.close()
    if getattr(ctx, "pool", None):
        await ctx.pool.close()
    exits = {}
    for proc in reversed(ctx.all):
        exits[proc.name] = await asyncio.to_thread(proc.stop)
    try:
        await ctx.env.delete_broker_objects()
        await ctx.env.drop_database()
    except Exception as exc:  # leave the run's figures intact
        log(f"cleanup failed: {exc!r}")
    return exits


def service(ctx: Ctx, name: str, role: str, env: dict[str, str]) -> Process:
    return hookpost(name, role, env, ctx.logs / f"{name}.log").start()


def new_ctx() -> Ctx:
    run_id = uuid.uuid4().hex[:8]
    # The per-org ingest limit (200 events/s by default) is a product policy, not a
    # capacity: with it on, the 1-endpoint phase measured the limit (thousands of 429s per
    # window) instead of the pipeline. Off, the bench's one org per phase can offer what
    # the pipeline takes.
    env = FreshEnv(f"hookpost_bench_{run_id}", overrides={"HOOKPOST_EVENTS_RATE_PER_S": "0"})
    logs = OUT / f"logs-{run_id}"
    logs.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(env, run_id, logs)
    ctx.profiles_dir.mkdir(exist_ok=True)
    return ctx


async def bench() -> dict[str, Any]:
    ctx = new_ctx()
    env = ctx.env
    results: dict[str, Any] = {"run": ctx.run_id, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    results["machine"] = machine()
    started = time.time()
    amqp: load.AmqpProducer | None = None
    try:
        log(f"bench {env.name}: database, receiver")
        await start_receiver(ctx)
        results["versions"] = await versions(ctx)
        results["ceilings"] = await phase_ceilings(ctx)
        for fanout in (1, FANOUT):
            log(f"ceiling of the design (benchmarks/skeleton.py), fan-out {fanout}: "
                f"{WARMUP_S:g} s warm-up, {SKELETON_WINDOW_S:g} s measured")  # fmt: skip
            skeleton = await phase_skeleton(ctx, fanout)
            results["ceilings"][f"skeleton_{fanout}"] = skeleton
            log(f"  {skeleton['deliveries_per_s']:,.0f} deliveries/s")
        await start_services(ctx)
        pool = ctx.pool
        amqp = await load.AmqpProducer(env.amqp_url, env.name).start()
        log(f"throughput, 1 endpoint per event: {WARMUP_S:g} s warm-up, {WINDOW_S:g} s measured")
        tput = await phase_throughput(ctx, "tput", "tput", 1)
        results["throughput_1"] = tput
        log(f"  {tput['deliveries_per_s']:,.0f} deliveries/s")
        log(f"throughput, fan-out {FANOUT}: {WARMUP_S:g} s warm-up, {WINDOW_S:g} s measured")
        fan = await phase_throughput(ctx, "fanout", "fanout", FANOUT)
        results["throughput_fanout"] = fan
        log(f"  {fan['deliveries_per_s']:,.0f} deliveries/s")
        log(f"throughput without the api (AMQP producer door), 1 endpoint: {AMQP_WINDOW_S:g} s")
        direct = await phase_throughput(
            ctx, "amqp", "amqp", 1, amqp=amqp, window_s=AMQP_WINDOW_S,
            profile=("dispatcher", "sender-1"),
        )  # fmt: skip
        results["throughput_amqp"] = direct
        log(f"  {direct['deliveries_per_s']:,.0f} deliveries/s")

        log(f"latency floor: open loop at {FLOOR_RATE:g} events/s for {LATENCY_S:g} s")
        results["latency_floor"] = await phase_latency(ctx, pool, "floor", FLOOR_RATE, profile_s=0)
        e2e = results["latency_floor"]["e2e_ms"]
        log(f"  p50 {e2e['p50']:.1f} ms, p95 {e2e['p95']:.1f} ms, p99 {e2e['p99']:.1f} ms")
        rate = max(5.0, 0.5 * tput["deliveries_per_s"])
        log(f"latency: open loop at {rate:,.0f} events/s (50 % of max) for {LATENCY_S:g} s")
        results["latency"] = await phase_latency(ctx, pool, "lat", rate)
        e2e = results["latency"]["e2e_ms"]
        log(f"  p50 {e2e['p50']:.1f} ms, p95 {e2e['p95']:.1f} ms, p99 {e2e['p99']:.1f} ms")

        log("dispatcher replaced by one that hands every first attempt to the senders")
        for dispatcher in (ctx.dispatcher, *ctx.more_dispatchers):
            dispatcher.stop()
        queue_env = env.env(HOOKPOST_DISPATCHER_FIRST_ATTEMPTS="0")
        ctx.dispatcher = service(ctx, "dispatcher-2", "dispatcher", queue_env)
        ctx.all.append(ctx.dispatcher)
        log(f"sender concurrency, default prefetch: {SLOW_EVENTS * FANOUT:,} deliveries at 200 ms")
        results["concurrency_default"] = await phase_concurrency(
            ctx, pool, amqp, "default prefetch"
        )

        log(f"second sender pair: retry scale 1/60, prefetch {BIG_PREFETCH}")
        for sender in ctx.senders:
            sender.stop()
        pair_env = env.env(
            HOOKPOST_RETRY_DELAY_SCALE=repr(RETRY_SCALE),
            HOOKPOST_SENDER_PREFETCH=str(BIG_PREFETCH),
        )
        ctx.senders = [service(ctx, f"sender-{i}", "sender", pair_env) for i in (3, 4)]
        ctx.all += ctx.senders
        log(f"sender concurrency, prefetch {BIG_PREFETCH}")
        results["concurrency_big"] = await phase_concurrency(
            ctx, pool, amqp, f"prefetch {BIG_PREFETCH}"
        )
        log(f"sender concurrency, prefetch {BIG_PREFETCH}, endpoint 2,000 ms")
        results["concurrency_slow_endpoint"] = await phase_concurrency(
            ctx, pool, amqp, f"prefetch {BIG_PREFETCH}, 2 s endpoint", "slower"
        )
        log(f"retry precision: {RETRY_EVENTS} deliveries, 500 then 200, first tier 1,000 ms")
        results["retry"] = await phase_retry(ctx)
        late = results["retry"]["lateness_ms"]
        log(f"  lateness p50 {late['p50']:.0f} ms, p99 {late['p99']:.0f} ms")
    finally:
        if amqp is not None:
            await amqp.close()
        results["exit_codes"] = await stop_stack(ctx)
    results["duration_s"] = round(time.time() - started, 1)
    return results


def strip_private(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_private(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [strip_private(v) for v in value]
    if isinstance(value, float):
        return round(value, 3)
    return value


def summary_line(results: dict[str, Any]) -> str:
    c = results["ceilings"]
    e2e = results["throughput_1"]["deliveries_per_s"]
    fanout = results["throughput_fanout"]["deliveries_per_s"]
    lat = results["latency"]["e2e_ms"]
    return (
        f"bench: e2e_dps={e2e:.0f} fanout_dps={fanout:.0f}"
        f" p50_ms={lat['p50']:.1f} p99_ms={lat['p99']:.1f}"
        f" ceiling_broker={c['broker_round_trips_per_s']:.0f}"
        f" ceiling_http={c['http_posts_per_s']:.0f}"
        f" ratio={e2e / c['broker_round_trips_per_s']:.3f}"
    )


def print_skeleton(skeleton: dict[str, Any]) -> None:
    print(
        f"skeleton     fan-out {skeleton['fanout']}: {skeleton['deliveries_per_s']:,.0f}"
        f" deliveries/s (HTTP in, broker round trip, HTTP out; no database);"
        f" errors {skeleton['request_errors']}"
    )
    print(f"             cpu s / 1,000 deliveries {skeleton['cpu']['cpu_s_per_1000_deliveries']}")
    print_cores(skeleton["cpu"])


def print_cores(cpu: dict[str, Any]) -> None:
    print(
        f"             cores busy {cpu['cores_busy']}; system "
        f"{cpu['system_cores_busy']}, other {cpu['other_processes_cores_busy']}"
    )


def print_postgres(phase: dict[str, Any]) -> None:
    print(f"             postgres connections {phase['postgres_connections']['by_service']}")
    statements = phase["postgres_statements"]
    if statements is None:
        print("             postgres statements: pg_stat_statements not loaded by the server")
        return
    print(
        f"             postgres statements {statements['statement_ms_per_1000_deliveries']} ms"
        " per 1,000 deliveries; top:"
    )
    for row in statements["top"][:5]:
        print(
            f"               {row['ms_per_1000_deliveries']:>7} ms/1k  {row['calls']:>6} calls"
            f"  plan {row['plan_ms_per_call']} + exec {row['exec_ms_per_call']} ms"
            f"  {row['query'][:60]}"
        )


def print_profiles(profiles: dict[str, Any]) -> None:
    for name, prof in profiles.items():
        top = ", ".join(f"{f} {p}%" for f, p in prof.get("top_self", [])[:5])
        print(
            f"             py-spy {name} main thread busy "
            f"{prof.get('main_thread_busy_pct')}% (other threads "
            f"{prof.get('other_threads_busy_pct')}%): {top}"
        )


def print_latency(lat: dict[str, Any]) -> None:
    print(
        f"latency      at {lat['offered_events_per_s']:,.0f} events/s: e2e {lat['e2e_ms']}"
        f" accept {lat['api_accept_ms']}"
    )
    for stage, figures in lat["stages_ms"].items():
        print(f"             {stage}: p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms")
    print(f"             cpu s / 1,000 deliveries {lat['cpu']['cpu_s_per_1000_deliveries']}")
    print(f"             run-queue wait s/s {lat['cpu']['runqueue_wait_per_s']}")
    print(f"             kernel share {lat['cpu']['kernel_share_of_service_cpu']}")
    print_cores(lat["cpu"])
    print_postgres(lat)
    print_profiles(lat["profiles"])


def print_summary(results: dict[str, Any]) -> None:
    c = results["ceilings"]
    broker, http = c["broker_round_trips_per_s"], c["http_posts_per_s"]
    print()
    print(f"machine      {results['machine']}")
    print(
        f"ceilings     broker {broker:,.0f} round trips/s · aiohttp {http:,.0f} POSTs/s · "
        f"postgres {c['postgres_inserts']['single_row']:,.0f} single-row inserts/s, "
        f"{c['postgres_inserts']['batched']:,.0f} batched rows/s"
    )
    for fanout in (1, FANOUT):
        print_skeleton(c[f"skeleton_{fanout}"])
    for key in ("throughput_1", "throughput_fanout", "throughput_amqp"):
        t = results[key]
        dps = t["deliveries_per_s"]
        skeleton = c[f"skeleton_{t['fanout']}"]["deliveries_per_s"]
        print(f"{t['door']}")
        print(
            f"fan-out {t['fanout']:<3}  {dps:,.0f} deliveries/s ({t['events_accepted_per_s']:,.0f}"
            f" events/s) = {dps / broker:.3f} × broker, {dps / http:.3f} × http,"
            f" {dps / skeleton:.3f} × skeleton;"
            f" errors {t['request_errors']}, duplicates {t['duplicate_posts']}"
        )
        print(f"             cpu s / 1,000 deliveries {t['cpu']['cpu_s_per_1000_deliveries']}")
        print(f"             kernel share {t['cpu']['kernel_share_of_service_cpu']}")
        print(f"             run-queue wait s/s {t['cpu']['runqueue_wait_per_s']}")
        print_postgres(t)
        print_cores(t["cpu"])
        print_profiles(t["profiles"])
    for key in ("latency_floor", "latency"):
        print_latency(results[key])
    for key in ("concurrency_default", "concurrency_big", "concurrency_slow_endpoint"):
        r = results[key]
        print(
            f"concurrency  {r['label']}: {r['total_deliveries_per_s']:,.0f} deliveries/s total;"
            f" cores busy {r['cpu']['cores_busy']}"
        )
        for name, rep in r["replicas"].items():
            print(
                f"             {name}: in-flight mean {rep['in_flight_mean']:.0f} max "
                f"{rep['in_flight_max']}, {rep['deliveries_per_s']:,.0f}/s, RSS max "
                f"{rep['rss_mb_max']:.0f} MB"
            )
    r = results["retry"]
    print(f"retries      {r['retried_deliveries']} retried: lateness {r['lateness_ms']}")
    print(f"duration     {results['duration_s']} s; exit codes {results['exit_codes']}")


def main() -> None:
    results = asyncio.run(bench())
    OUT.mkdir(exist_ok=True)
    DOCS.mkdir(parents=True, exist_ok=True)
    written = plots.render(results, DOCS)
    path = OUT / f"bench-{results['run']}.json"
    path.write_bytes(
        orjson.dumps(
            strip_private(results), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
        )
    )
    (OUT / "latest.json").write_bytes(path.read_bytes())
    print_summary(results)
    print(f"figures      {path}; plots {', '.join(str(p.relative_to(ROOT)) for p in written)}")
    print(summary_line(results))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
