"""`make chaos`: faults under load, then an account of every accepted event.

    1. private RabbitMQ (one node, or a 3-node cluster) + PostgreSQL on free ports
       (chaos/infra.py), the receiver process, TCP proxies between the services and the
       servers (chaos/proxies.py), api + dispatcher + 2 senders as `hookpost` subprocesses
    2. orgs (`hookpost orgs create`) and destinations (POST /api/v1/delivery-destinations):
       healthy, flaky (500 30 % of the time), timing-out and always-410 receivers
    3. a steady load of events through POST /api/v1/events, while the segment's faults run in
       turn (chaos/faults.py, chaos/hard_faults.py); after each, the time until a fresh event
       is delivered
    4. the load stops once every fault ran and the segment's events were accepted; wait until
       no delivery is PENDING; SIGTERM everything; account (chaos/verify.py, chaos/judge.py)

Segments, each on its own private servers: `single` (every fault on one broker node, ≥ 5,000
events) and `cluster` (a 3-node cluster's leader SIGKILLed) are `make chaos`; `long`
(PostgreSQL away past the poison window) is `make chaos-long`. `--only a,b` runs some faults.

The last line is machine-readable: `chaos: events=… deliveries=… lost=… duplicates=… stuck=…
…`, over every segment. Exit status 1 when anything was lost, stuck or inconsistent, a check
of chaos/judge.py failed, a service crashed or exited non-zero on SIGTERM, or the api
answered a 500.
Knobs: CHAOS_EVENTS (5000), CHAOS_CLUSTER_EVENTS (1000), CHAOS_LONG_EVENTS (1000),
CHAOS_RATE (events/s, 20), CHAOS_GAP_S (s of plain load before and between faults, 25),
CHAOS_DRAIN_S (s to wait for the last deliveries, 300), CHAOS_SEED (4).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from chaos import judge, verify
from chaos.faults import CLUSTER, LONG, SINGLE_NODE, Fault, run_fault
from chaos.hard_faults import dead_queue_depths
from chaos.infra import PrivateInfra
from chaos.load import LoadGenerator
from chaos.probe import Prober
from chaos.stack import ChaosStack, log_dir_for
from harness.orgs import create_orgs
from harness.process import free_port
from harness.receiver import ReceiverClient, Record
from libs.infra.db.pool import create_pool

TARGET_EVENTS = int(os.environ.get("CHAOS_EVENTS", 5000))
CLUSTER_EVENTS = int(os.environ.get("CHAOS_CLUSTER_EVENTS", 1000))
LONG_EVENTS = int(os.environ.get("CHAOS_LONG_EVENTS", 1000))
RATE = float(os.environ.get("CHAOS_RATE", 20))
GAP_S = float(os.environ.get("CHAOS_GAP_S", 25))
DRAIN_S = float(os.environ.get("CHAOS_DRAIN_S", 300))
SEED = int(os.environ.get("CHAOS_SEED", 4))
RETRY_DELAY_SCALE = "0.01"  # 1m / 5m / 30m tiers → 0.6 s / 3 s / 18 s
SEND_TIMEOUT_S = "2"  # the slow receivers hold 5 s: every attempt to them times out


@dataclass(frozen=True)
class Segment:
    """One stack on its own private servers, with its faults in turn under the load."""

    name: str
    nodes: int  # RabbitMQ nodes
    events: int  # the load goes on until this many were accepted
    faults: tuple[Fault, ...]
    drain_s: float = DRAIN_S  # the longest wait for the last deliveries after the load


# RabbitMQ 3.10's at-least-once dead-lettering can stall in a quorum queue whose leader was
# killed (rabbitmq-server#16652, #12625): a retry tier's expired messages then stay in it,
# counted but neither ready nor unacked, until the reconciler re-drives their deliveries
# (HOOKPOST_REDRIVE_DELIVERIES_AFTER_S, 300 s, checked every 15 s). The drain waits that out.
CLUSTER_DRAIN_S = max(DRAIN_S, 300 + 15 + 105)
SEGMENTS = {
    "single": Segment("single", 1, TARGET_EVENTS, SINGLE_NODE),
    "cluster": Segment("cluster", 3, CLUSTER_EVENTS, CLUSTER, CLUSTER_DRAIN_S),
    "long": Segment("long", 1, LONG_EVENTS, LONG, CLUSTER_DRAIN_S),
}

MC, MF, MER = "mapping.completed", "mapping.failed", "mapping.error.resolved"
IDR = "inventory.duplicate.resolved"
# org → [(receiver kind, name, subscribed types)]; "4x" subscribes to a type never sent.
# The slow receivers (every attempt times out) take only the rarest type (3 %): an endpoint
# that always times out gets one attempt in flight per engine (libs/delivery/limits.py),
# 1.5 attempts/s here with 2 s timeouts. mapping.failed (1.2 deliveries/s, 4 attempts each)
# and even mapping.error.resolved (0.4/s) were beyond that: after a 70 s partition their
# backlog outlived the 300 s drain. At 0.12/s an outage's backlog drains within the run.
LAYOUT: dict[str, list[tuple[str, str, list[str]]]] = {
    "org-1": [("ok", "1a", [MC, MF, MER, IDR]), ("ok", "1b", [MC]), ("flaky", "1", [MC, MF])],
    "org-2": [("ok", "2", [MC, MF, MER]), ("slow", "2", [IDR])],
    "org-3": [("flaky", "3", [MC, MF, MER]), ("gone", "3", [MF]), ("ok", "3", [MER])],
    "org-4": [("ok", "4", [MF]), ("flaky", "4", [MC, MER]), ("slow", "4", [IDR])],
    "org-5": [("ok", "5", [MC]), ("ok", "5x", ["export.ready"])],
    "probe": [("ok", "probe", [MC])],
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def create_destinations(
    session: aiohttp.ClientSession, stack: ChaosStack, orgs: dict[str, dict[str, str]]
) -> None:
    for org, endpoints in LAYOUT.items():
        token = orgs[org]["apiToken"]
        for kind, name, events in endpoints:
            async with session.post(
                f"{stack.api_url}/api/v1/delivery-destinations",
                json={
                    "type": "WEBHOOK",
                    "name": f"{kind}-{name}",
                    "webhookUrl": f"{stack.receiver_url}/{kind}/{name}",
                    "events": events,
                },
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                if response.status != 201:
                    raise RuntimeError(f"destination {kind}/{name}: {await response.text()}")


async def wait_settled(pool: asyncpg.Pool, timeout: float) -> tuple[float, tuple[int, int]]:
    """Wait until no delivery is PENDING and every event is dispatched; (seconds, last)."""
    started = time.time()
    last = (-1, -1)
    while time.time() - started < timeout:
        with contextlib.suppress(Exception):
            last = await verify.unsettled(pool)
            if last == (0, 0):
                break
        await asyncio.sleep(1.0)
    return time.time() - started, last


async def receiver_posts(receiver: ReceiverClient, log_dir: Path) -> list[verify.Post]:
    """What the receiver saw; its raw records (harness/receiver/records.py: Record.to_row)
    are kept in posts.json for a post-mortem."""
    raw = await receiver.raw_records()
    (log_dir / "posts.json").write_bytes(raw)
    records = [Record.from_row(row) for row in orjson.loads(raw)]
    return [verify.Post(r.path, r.event_id, r.status) for r in records]


async def chaos(stack: ChaosStack, run_id: str, segment: Segment) -> dict[str, Any]:
    t0 = time.time()
    nodes = ", ".join(f":{n.port}" for n in stack.infra.rabbits)
    log(f"private PostgreSQL :{stack.infra.postgres.port}, RabbitMQ {nodes}")
    await stack.start()
    log(f"api {stack.api_url}, dispatcher, 2 senders, receiver {stack.receiver_url}")
    orgs = await create_orgs(stack.services.env, list(LAYOUT))
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await create_destinations(session, stack, orgs)
        tokens = [orgs[o]["apiToken"] for o in LAYOUT if o != "probe"]
        generator = LoadGenerator(
            session, stack.api_url, tokens, rate_per_s=RATE, max_in_flight=32, seed=SEED
        )
        load_task = asyncio.create_task(generator.run())
        receiver = ReceiverClient(session, stack.receiver_url)
        prober = Prober(session, stack.api_url, receiver, orgs["probe"]["apiToken"])
        stack.prober = prober
        log(f"load: {RATE:g} events/s over {len(tokens)} orgs; {GAP_S:g} s of plain load first")
        await asyncio.sleep(GAP_S)
        before = time.time()
        baseline = await prober.delivered_after(before)
        baseline_s = None if baseline is None else baseline - before
        log(f"baseline: a probe event is delivered in {baseline_s and round(baseline_s, 2)} s")

        faults = []
        for name, what, harm in segment.faults:
            log(f"fault {name}: {what}")
            result = await run_fault(name, what, harm, stack, prober, generator.stats)
            faults.append(result)
            recovery = "NEVER" if result.recovery_s is None else f"{result.recovery_s:.2f} s"
            log(
                f"  outage {result.outage_s:.1f} s, recovery {recovery}; api answers meanwhile:"
                f" {result.api_answers}; {'; '.join(result.notes)}"
            )
            await asyncio.sleep(GAP_S)

        waited = 0
        while len(generator.stats.accepted) < segment.events:
            if waited % 20 == 0:
                log(f"  {len(generator.stats.accepted)} accepted, load goes on to {segment.events}")
            await asyncio.sleep(1)
            waited += 1
        generator.stop()
        stats = await load_task
        load_end = time.time()
        log(f"load stopped: {len(stats.accepted)} accepted of {len(stats.answers)} requests")
        pool = await create_pool(stack.env.dsn, min_size=1, max_size=2)
        drain_s, left = await wait_settled(pool, segment.drain_s)
        log(f"settled {drain_s:.1f} s after the load stopped (PENDING, undispatched) = {left}")
        await stack.check_alive("drain")
        # While their consumers still run: with every delivery settled, nothing may wait there.
        dead_left = await dead_queue_depths(stack)
        await stack.stop_services()
        poison = [
            judge.PoisonRow(r["message_id"], r["source_queue"], r["reason"])
            for r in await pool.fetch(
                "SELECT message_id, source_queue, reason FROM poison_messages ORDER BY id"
            )
        ]

        events, endpoints, plans, deliveries = await verify.read_rows(pool)
        accepted = [*stats.accepted, *prober.accepted]
        (stack.log_dir / "accepted.txt").write_text("\n".join(accepted) + "\n")
        for table in ("events", "deliveries", "delivery_attempts"):  # for a post-mortem
            try:  # a query, not the table: events, deliveries and attempts are partitioned
                await pool.copy_from_query(
                    f"SELECT * FROM {table}",
                    output=str(stack.log_dir / f"{table}.csv"),
                    format="csv",
                    header=True,
                )
            except asyncpg.PostgresError as exc:  # a copy for later must not cost the account
                log(f"  {table}.csv not written: {exc}")
        posts = await receiver_posts(receiver, stack.log_dir)
    await pool.close()

    report = verify.account(
        accepted=accepted,
        events=events,
        endpoints=endpoints,
        plans=plans,
        deliveries=deliveries,
        posts=posts,
    )
    server_errors = sum(n for outcome, n in stats.outcomes().items() if outcome == "500")
    judgement = judge.Judgement()
    judge.judge_answers(judgement, stats.answers)
    for f in faults:
        judge.judge_fault(judgement, f.name, f.recovery_s, f.problems)
    judge.judge_poison(judgement, stack.corpus, poison, {e.id for e in events})
    judge.judge_dead_queues(judgement, dead_left)
    nonzero_exits = {
        name: codes for name, codes in stack.exit_codes.items() if any(c != 0 for c in codes)
    }
    return {
        "run": run_id,
        "segment": segment.name,
        "rabbitmq_nodes": segment.nodes,
        "dead_queues_left": dead_left,
        "poison_rows": len(poison),
        "corpus": [asdict(c) for c in stack.corpus],
        "judgement": {"problems": dict(judgement.problems), "examples": dict(judgement.examples)},
        "elapsed_s": round(time.time() - t0, 1),
        "rate_per_s": RATE,
        "retry_delay_scale": RETRY_DELAY_SCALE,
        "send_timeout_s": SEND_TIMEOUT_S,
        "requests": len(stats.answers),
        "api_answers": dict(stats.outcomes()),
        "unshaped_errors": len(stats.unshaped()),
        "api_500": server_errors,
        "load_s": round(load_end - stats.answers[0].sent, 1),
        "drain_s": round(drain_s, 1),
        "baseline_probe_s": None if baseline_s is None else round(baseline_s, 2),
        "faults": [
            {
                **asdict(f),
                "outage_s": round(f.outage_s, 2),
                "recovery_s": None if f.recovery_s is None else round(f.recovery_s, 2),
                "slowest_answer_s": round(f.slowest_answer_s, 2),
            }
            for f in faults
        ],
        "crashes": [asdict(c) for c in stack.crashes],
        "exit_codes": stack.exit_codes,
        "nonzero_exits": nonzero_exits,
        "report": {
            "accepted": report.accepted,
            "events": report.events,
            "expected_deliveries": report.expected_deliveries,
            "deliveries": report.deliveries,
            "by_status": dict(report.by_status),
            "posts": report.posts,
            "lost": report.lost,
            "stuck": report.stuck,
            "inconsistent": report.inconsistent,
            "duplicate_posts": report.duplicate_posts,
            "duplicate_successes": report.duplicate_successes,
            "duplicate_success_examples": report.duplicate_success_examples,
            "problems": dict(report.problems),
            "examples": dict(report.examples),
        },
        "passed": report.ok
        and judgement.ok
        and not stack.crashes
        and not nonzero_exits
        and not server_errors,
    }


def print_summary(result: dict[str, Any], figures: Path) -> None:
    r = result["report"]
    print()
    print(
        f"chaos {result['segment']} ({result['rabbitmq_nodes']} RabbitMQ node(s)) run"
        f" {result['run']}: {result['elapsed_s']} s"
    )
    print(f"  events accepted        {r['accepted']:>7}   (requests {result['requests']})")
    print(f"  api answers            {result['api_answers']}")
    print(f"  deliveries expected    {r['expected_deliveries']:>7}   rows {r['deliveries']}")
    print(f"  deliveries by status   {r['by_status']}")
    print(f"  POSTs received         {r['posts']:>7}")
    print(f"  lost                   {r['lost']:>7}")
    print(f"  stuck                  {r['stuck']:>7}")
    print(f"  inconsistent           {r['inconsistent']:>7}")
    print(
        f"  duplicate POSTs        {r['duplicate_posts']:>7}   (2xx beyond the first: "
        f"{r['duplicate_successes']})"
    )
    for where in r["duplicate_success_examples"]:
        print(f"    answered 2xx twice     {where}")
    print(
        f"  poison rows            {result['poison_rows']:>7}"
        f"   left on dead queues {result['dead_queues_left']}"
    )
    print(f"  settled after load     {result['drain_s']:>7} s")
    print(f"  baseline probe         {result['baseline_probe_s']} s")
    for fault in result["faults"]:
        print(
            f"  {fault['name']:<24} outage {fault['outage_s']:>6} s  recovery"
            f" {fault['recovery_s']} s  slowest answer {fault['slowest_answer_s']} s"
            f"  api: {fault['api_answers']}"
        )
        for note in fault["notes"]:
            print(f"      {note}")
    if result["crashes"] or result["nonzero_exits"]:
        print(f"  crashes {result['crashes']}  non-zero exits {result['nonzero_exits']}")
    for kind, examples in r["examples"].items():
        print(f"  {kind}: {r['problems'][kind]} e.g. {examples[:3]}")
    for kind, examples in result["judgement"]["examples"].items():
        print(f"  {kind}: {result['judgement']['problems'][kind]} e.g. {examples[:3]}")
    print(f"  figures and logs       {figures}")


def summary_line(results: list[dict[str, Any]]) -> str:
    """The machine-readable last line, over every segment of the run."""

    def total(key: str) -> int:
        return sum(int(r["report"][key]) for r in results)

    recovery = " ".join(
        f"recovery_{f['name']}_s={f['recovery_s']}" for r in results for f in r["faults"]
    )
    problems = sum(sum(r["judgement"]["problems"].values()) for r in results)
    passed = all(r["passed"] for r in results)
    return (
        f"chaos: events={total('accepted')} deliveries={total('deliveries')} lost={total('lost')}"
        f" duplicates={total('duplicate_posts')} stuck={total('stuck')}"
        f" inconsistent={total('inconsistent')} problems={problems}"
        f" crashes={sum(len(r['crashes']) for r in results)}"
        f" api_500={sum(r['api_500'] for r in results)} {recovery}"
        f" elapsed_s={round(sum(r['elapsed_s'] for r in results), 1)}"
        f" result={'PASS' if passed else 'FAIL'}"
    )


def _raise_on_sigterm(*_: object) -> None:
    raise KeyboardInterrupt  # the finally below tears everything down


def run_segment(segment: Segment, run_id: str, log_dir: Path) -> dict[str, Any]:
    """One segment on its own private servers, torn down whatever happens."""
    ports = {
        "pg": int(os.environ.get("CHAOS_PG_PORT", 0)) or free_port(),
        "amqp": int(os.environ.get("CHAOS_AMQP_PORT", 0)) or free_port(),
        "dist": int(os.environ.get("CHAOS_DIST_PORT", 0)) or free_port(),
    }
    infra = PrivateInfra(f"{run_id}-{segment.name}", ports, nodes=segment.nodes)
    stack = ChaosStack.create(
        infra,
        log_dir,
        seed=SEED,
        retry_delay_scale=RETRY_DELAY_SCALE,
        send_timeout_s=SEND_TIMEOUT_S,
    )
    try:
        return asyncio.run(chaos(stack, run_id, segment))
    finally:
        stack.close()
        infra.close(keep_logs_in=log_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--segment", action="append", choices=sorted(SEGMENTS), help="default: single, cluster"
    )
    parser.add_argument("--only", help="comma-separated fault names (to iterate on a few)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("aiormq", "aio_pika", "asyncio", "asyncpg"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    run_id = uuid.uuid4().hex[:8]
    only = set(args.only.split(",")) if args.only else None
    segments = []
    for name in args.segment or ["single", "cluster"]:
        segment = SEGMENTS[name]
        if only is not None:
            segment = replace(segment, faults=tuple(f for f in segment.faults if f[0] in only))
            if not segment.faults:
                continue
        segments.append(segment)
    results = []
    for segment in segments:
        log_dir = log_dir_for(f"{run_id}-{segment.name}")
        log(f"chaos run {run_id}, {segment.name}: logs in {log_dir}")
        try:
            result = run_segment(segment, run_id, log_dir)
        except KeyboardInterrupt:
            log("interrupted: stopping everything this run started")
            return 130
        out = log_dir / "result.json"
        out.write_text(json.dumps(result, indent=2, default=str))
        print_summary(result, out)
        results.append(result)
    print(summary_line(results))
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
