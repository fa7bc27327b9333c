"""Small helpers every phase uses: the progress log, percentiles, sleeping until a time."""

from __future__ import annotations

import asyncio
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
