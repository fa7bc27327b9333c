"""Small helpers every phase uses: the progress log, percentiles, sleeping until a time, and
what an EXPLAIN ANALYZE says a statement cost (the *_cost benchmarks)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence

import numpy as np


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pct(values: Sequence[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def percentiles(values: Sequence[float], *qs: str) -> dict[str, float]:
    """{"p50": …, "p99": …} for qs ("p50", "p99")."""
    return {q: pct(values, float(q[1:])) for q in qs}


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
