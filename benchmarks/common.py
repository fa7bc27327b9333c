"""Small helpers every phase uses: the progress log, percentiles, sleeping until a time, a
consumer that acks and counts; and for the *_cost benchmarks, a scratch database, what an
EXPLAIN ANALYZE says a statement cost, and their command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import aio_pika
import asyncpg
import numpy as np

from harness.env import FreshEnv


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pct(values: Sequence[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def percentiles(values: Sequence[float], *qs: str) -> dict[str, float]:
    """{"p50": …, "p99": …} for qs ("p50", "p99")."""
    return {q: pct(values, float(q[1:])) for q in qs}


async def ack_all(queue: aio_pika.abc.AbstractQueue, messages: int) -> asyncio.Event:
    """Consume `queue`, acking each message; the event is set once `messages` were."""
    received = 0
    done = asyncio.Event()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal received
        await message.ack()
        received += 1
        if received == messages:
            done.set()

    await queue.consume(on_message)
    return done


async def sleep_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


def plan_cost(plan_json: str) -> str:
    """`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`'s output as one phrase: PostgreSQL's execution
    and planning times and the shared buffers the top node touched (hit or read)."""
    top = json.loads(plan_json)[0]
    buffers = top["Plan"].get("Shared Hit Blocks", 0) + top["Plan"].get("Shared Read Blocks", 0)
    return (
        f"PostgreSQL execution {top['Execution Time']:.2f} ms,"
        f" planning {top['Planning Time']:.2f} ms, {buffers} buffers"
    )


async def explain_cost(conn: asyncpg.Connection, sql: str, *params: object) -> str:
    """`sql` run under EXPLAIN ANALYZE (it executes: roll back what it changes), as plan_cost."""
    return plan_cost(await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *params))


@asynccontextmanager
async def scratch_database(
    purpose: str, *, up_to: int | None = None
) -> AsyncIterator[tuple[FreshEnv, asyncpg.Connection]]:
    """A database of its own (migrated, or only up to migration `up_to`) and a connection to
    it; dropped on the way out."""
    env = FreshEnv(f"hookpost_{purpose}_{uuid.uuid4().hex[:8]}")
    await env.create_database(up_to=up_to)
    try:
        conn = await asyncpg.connect(env.dsn)
        try:
            yield env, conn
        finally:
            await conn.close()
    finally:
        await env.drop_database()


def cost_main(
    doc: str, measure: Callable[..., Awaitable[None]], **options: int | tuple[int, str]
) -> None:
    """A *_cost benchmark's command line: each option (its default, or default and help) is
    an integer `--flag`, passed to `measure` by name."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, option in options.items():
        default, text = option if isinstance(option, tuple) else (option, None)
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=default, help=text)
    asyncio.run(measure(**vars(parser.parse_args())))
