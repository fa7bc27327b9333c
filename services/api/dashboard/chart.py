"""An endpoint's attempts per hour over the last day, as the numbers an inline SVG needs
(the template draws it: no chart library, no script)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

HOURS = 24
WIDTH = 480
HEIGHT = 120
BAR_GAP = 2


@dataclass(frozen=True)
class Bar:
    hour: datetime
    succeeded: int
    failed: int
    x: float
    width: float
    ok_y: float  # the succeeded part sits on top of the failed one
    ok_height: float
    failed_y: float
    failed_height: float


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    peak: int
    succeeded: int
    failed: int
    width: int = WIDTH
    height: int = HEIGHT


def start_of_window(now: datetime) -> datetime:
    """The first hour the chart shows (24 whole hours, the current one last)."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)


def hourly_chart(rows: Iterable[asyncpg.Record], now: datetime) -> Chart:
    first = start_of_window(now)
    counts = {row["hour"]: (row["succeeded"], row["failed"]) for row in rows}
    hours = [first + timedelta(hours=i) for i in range(HOURS)]
    peak = max(sum(counts.get(hour, (0, 0))) for hour in hours)
    scale = (HEIGHT - 4) / peak if peak else 0.0
    slot = WIDTH / HOURS
    bars = []
    for i, hour in enumerate(hours):
        ok, bad = counts.get(hour, (0, 0))
        failed_h, ok_h = bad * scale, ok * scale
        bars.append(
            Bar(
                hour=hour,
                succeeded=ok,
                failed=bad,
                x=round(i * slot + BAR_GAP / 2, 2),
                width=round(slot - BAR_GAP, 2),
                failed_y=round(HEIGHT - failed_h, 2),
                failed_height=round(failed_h, 2),
                ok_y=round(HEIGHT - failed_h - ok_h, 2),
                ok_height=round(ok_h, 2),
            )
        )
    return Chart(
        bars=bars,
        peak=peak,
        succeeded=sum(b.succeeded for b in bars),
        failed=sum(b.failed for b in bars),
    )
