"""Phase 6: retry precision. An endpoint answers an event's first attempt 500 and every later
one 200; how late each second attempt comes against its tier (1,000 ms at the bench's
retry scale)."""

from __future__ import annotations

from benchmarks import load
from benchmarks.common import percentiles
from benchmarks.config import RETRY_EVENTS
from benchmarks.results import Retry
from benchmarks.rig import Pipeline
from harness.receiver import Record

TIER_MS = 1000


async def measure(pipe: Pipeline) -> Retry:
    rig = pipe.rig
    base = rig.arrivals.get("flaky")
    sent = load.Sent()
    await load.open_loop(
        rig.session, pipe.api_url, pipe.token("flaky"),
        rate_per_s=100, duration_s=RETRY_EVENTS / 100, max_open=64, sent=sent,
    )  # fmt: skip
    drained = await rig.wait_arrivals("flaky", base + 2 * len(sent.events), timeout=40)
    by_event: dict[str | None, list[Record]] = {}
    for r in (await rig.records("flaky"))[base:]:
        by_event.setdefault(r.event_id, []).append(r)
    lateness = []
    for attempts in by_event.values():
        attempts.sort(key=lambda r: r.arrived)
        first = attempts[0]
        if len(attempts) >= 2 and first.status == 500 and first.answered is not None:
            scheduled = first.answered + TIER_MS / 1000  # the tier runs from the 500
            lateness.append((attempts[1].arrived - scheduled) * 1000)
    return Retry(
        tier_ms=TIER_MS,
        events=len(sent.events),
        retried_deliveries=len(lateness),
        drained=drained,
        lateness_ms=percentiles(lateness, "p50", "p95", "p99")
        | {"min": min(lateness, default=float("nan")), "max": max(lateness, default=float("nan"))},
    )
