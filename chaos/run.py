"""`make chaos`: faults under load, then an account of every accepted event.

    1. private RabbitMQ node + PostgreSQL cluster on free ports (chaos/infra.py), the
       receiver process, api + dispatcher + 2 senders as `.venv/bin/hookpost` subprocesses
    2. orgs (`hookpost orgs create`) and destinations (POST /api/v1/delivery-destinations):
       healthy, flaky (500 30 % of the time), timing-out and always-410 receivers
    3. a steady load of events through POST /api/v1/events, while in turn (chaos/faults.py):
       SIGKILL a sender · SIGKILL the dispatcher · restart RabbitMQ · restart PostgreSQL ·
       SIGTERM every service in turn; after each, the time until a fresh event is delivered
    4. the load stops once every fault ran and CHAOS_EVENTS were accepted; wait until no
       delivery is PENDING; SIGTERM everything; account (chaos/verify.py); print

The last line is machine-readable: `chaos: events=… deliveries=… lost=… duplicates=… stuck=…
…`. Exit status 1 when anything was lost, stuck or inconsistent, a service crashed or exited
non-zero on SIGTERM, or the api answered a 500.
Knobs: CHAOS_EVENTS (5000), CHAOS_RATE (events/s, 20), CHAOS_GAP_S (s of plain load before
and between faults, 25: spreads the faults over the load), CHAOS_DRAIN_S (s to wait for the
last deliveries, 300), CHAOS_SEED (4).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from chaos import verify
from chaos.faults import FAULTS, Prober, run_fault
from chaos.infra import PrivateInfra
from chaos.load import LoadGenerator
from chaos.stack import ChaosStack, log_dir_for
from harness.orgs import create_orgs
from harness.process import free_port
from harness.receiver import ReceiverClient, Record
from libs.infra.db.pool import create_pool

TARGET_EVENTS = int(os.environ.get("CHAOS_EVENTS", 5000))
RATE = float(os.environ.get("CHAOS_RATE", 20))
GAP_S = float(os.environ.get("CHAOS_GAP_S", 25))
DRAIN_S = float(os.environ.get("CHAOS_DRAIN_S", 300))
SEED = int(os.environ.get("CHAOS_SEED", 4))
RETRY_DELAY_SCALE = "0.01"  # 1m / 5m / 30m tiers → 0.6 s / 3 s / 18 s
SEND_TIMEOUT_S = "2"  # the slow receivers hold 5 s: every attempt to them times out

MC, MF, MER = "mapping.completed", "mapping.failed", "mapping.error.resolved"
# org → [(receiver kind, name, subscribed types)]; "4x" subscribes to a type never sent.
LAYOUT: dict[str, list[tuple[str, str, list[str]]]] = {
    "org-1": [("ok", "1a", [MC, MF, MER]), ("ok", "1b", [MC]), ("flaky", "1", [MC, MF])],
    "org-2": [("ok", "2", [MC, MF, MER]), ("slow", "2", [MF])],
    "org-3": [("flaky", "3", [MC, MF, MER]), ("gone", "3", [MF]), ("ok", "3", [MER])],
    "org-4": [("ok", "4", [MF]), ("flaky", "4", [MC, MER]), ("slow", "4", [MER])],
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


async def chaos(stack: ChaosStack, run_id: str) -> dict[str, Any]:
    t0 = time.time()
    log(f"private PostgreSQL :{stack.infra.postgres.port}, RabbitMQ :{stack.infra.rabbit.port}")
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
        log(f"load: {RATE:g} events/s over {len(tokens)} orgs; {GAP_S:g} s of plain load first")
        await asyncio.sleep(GAP_S)
        before = time.time()
        baseline = await prober.delivered_after(before)
        baseline_s = None if baseline is None else baseline - before
        log(f"baseline: a probe event is delivered in {baseline_s and round(baseline_s, 2)} s")

        faults = []
        for name, what, harm in FAULTS:
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
        while len(generator.stats.accepted) < TARGET_EVENTS:
            if waited % 20 == 0:
                log(f"  {len(generator.stats.accepted)} accepted, load goes on to {TARGET_EVENTS}")
            await asyncio.sleep(1)
            waited += 1
        generator.stop()
        stats = await load_task
        load_end = time.time()
        log(f"load stopped: {len(stats.accepted)} accepted of {len(stats.answers)} requests")
        pool = await create_pool(stack.env.dsn, min_size=1, max_size=2)
        drain_s, left = await wait_settled(pool, DRAIN_S)
        log(f"settled {drain_s:.1f} s after the load stopped (PENDING, undispatched) = {left}")
        await stack.check_alive("drain")
        await stack.stop_services()

        events, endpoints, plans, deliveries = await verify.read_rows(pool)
        accepted = [*stats.accepted, *prober.accepted]
        (stack.log_dir / "accepted.txt").write_text("\n".join(accepted) + "\n")
        for table in ("events", "deliveries", "delivery_attempts"):  # for a post-mortem
            await pool.copy_from_table(
                table, output=str(stack.log_dir / f"{table}.csv"), format="csv", header=True
            )
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
    nonzero_exits = {
        name: codes for name, codes in stack.exit_codes.items() if any(c != 0 for c in codes)
    }
    return {
        "run": run_id,
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
        "passed": report.ok and not stack.crashes and not nonzero_exits and not server_errors,
    }


def print_summary(result: dict[str, Any], figures: Path) -> None:
    r = result["report"]
    print()
    print(f"chaos run {result['run']}: {result['elapsed_s']} s")
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
    print(f"  settled after load     {result['drain_s']:>7} s")
    print(f"  baseline probe         {result['baseline_probe_s']} s")
    for fault in result["faults"]:
        print(
            f"  {fault['name']:<22} outage {fault['outage_s']:>6} s  recovery"
            f" {fault['recovery_s']} s  api: {fault['api_answers']}"
        )
    if result["crashes"] or result["nonzero_exits"]:
        print(f"  crashes {result['crashes']}  non-zero exits {result['nonzero_exits']}")
    for kind, examples in r["examples"].items():
        print(f"  {kind}: {r['problems'][kind]} e.g. {examples[:3]}")
    print(f"  figures and logs       {figures}")
    recovery = " ".join(f"recovery_{f['name']}_s={f['recovery_s']}" for f in result["faults"])
    print(
        f"chaos: events={r['accepted']} deliveries={r['deliveries']} lost={r['lost']}"
        f" duplicates={r['duplicate_posts']} stuck={r['stuck']}"
        f" inconsistent={r['inconsistent']} crashes={len(result['crashes'])}"
        f" api_500={result['api_500']} {recovery}"
        f" elapsed_s={result['elapsed_s']} result={'PASS' if result['passed'] else 'FAIL'}"
    )


def _raise_on_sigterm(*_: object) -> None:
    raise KeyboardInterrupt  # the finally below tears everything down


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("aiormq", "aio_pika", "asyncio", "asyncpg"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    run_id = uuid.uuid4().hex[:8]
    log_dir = log_dir_for(run_id)
    ports = {
        "pg": int(os.environ.get("CHAOS_PG_PORT", 0)) or free_port(),
        "amqp": int(os.environ.get("CHAOS_AMQP_PORT", 0)) or free_port(),
        "dist": int(os.environ.get("CHAOS_DIST_PORT", 0)) or free_port(),
    }
    infra = PrivateInfra(run_id, ports)
    stack = ChaosStack.create(
        infra,
        log_dir,
        seed=SEED,
        retry_delay_scale=RETRY_DELAY_SCALE,
        send_timeout_s=SEND_TIMEOUT_S,
    )
    log(f"chaos run {run_id}: logs in {log_dir}")
    try:
        result = asyncio.run(chaos(stack, run_id))
    except KeyboardInterrupt:
        log("interrupted: stopping everything this run started")
        return 130
    finally:
        stack.close()
        infra.close(keep_logs_in=log_dir)
    out = log_dir / "result.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print_summary(result, out)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
