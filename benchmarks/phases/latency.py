"""Phase 4: latency under an open loop at a fixed rate, end to end and stage by stage (from
the rows' own timestamps), then py-spy at the same rate so the profile shows this regime
without perturbing the measured window."""

from __future__ import annotations

import asyncio

import asyncpg

from benchmarks import load
from benchmarks.common import percentiles
from benchmarks.config import LATENCY_S, PROFILE_S, PROFILED
from benchmarks.measure import PgActivity, cpu_report, snapshot
from benchmarks.profile import profile_services
from benchmarks.results import Latency, Percentiles
from benchmarks.rig import Pipeline
from benchmarks.statements import StatementStats

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


async def stages(
    pool: asyncpg.Pool,
    org_id: str,
    sent: list[tuple[float, float, str]],
    first: dict[str | None, float],
) -> dict[str, Percentiles]:
    """Where the time goes, from the rows' own timestamps (one clock: this machine)."""
    rows = {r["id"]: r for r in await pool.fetch(_STAGES_SQL, org_id)}
    spans: dict[str, list[float]] = {
        "send → event row stored (http, auth, INSERT)": [],
        "stored → dispatched (publish, dispatcher, deliveries, task confirmed)": [],
        "dispatched → POST started (by the dispatcher, or a sender)": [],
        "POST started → arrived at the receiver": [],
    }
    names = list(spans)
    for t_send, _t_ack, event_id in sent:
        row = rows.get(event_id)
        if row is None or event_id not in first or row["dispatched"] is None:
            continue
        marks = [t_send, row["stored"], row["dispatched"], row["attempted"], first[event_id]]
        for name, a, b in zip(names, marks, marks[1:], strict=False):
            spans[name].append((b - a) * 1000)
    return {name: {**percentiles(v, "p50", "p99"), "n": len(v)} for name, v in spans.items()}


async def measure(
    pipe: Pipeline,
    org: str,
    rate: float,
    *,
    duration_s: float = LATENCY_S,
    profile_s: int = PROFILE_S,
) -> Latency:
    """Open loop at `rate` for `duration_s` (measured), then `profile_s` more at the same
    rate with py-spy attached."""
    rig = pipe.rig
    sent = load.Sent()
    base = rig.arrivals.get(org)
    before = snapshot(pipe.processes())
    activity = PgActivity(pipe.pool, rig.env.name).start()
    statements = await StatementStats(pipe.pool).start()
    driver = asyncio.create_task(
        load.open_loop(
            rig.session, pipe.api_url, pipe.token(org),
            rate_per_s=rate, duration_s=duration_s + profile_s, max_open=256, sent=sent,
        )
    )  # fmt: skip
    await asyncio.sleep(duration_s)
    after = snapshot(pipe.processes())
    measured = [e for e in sent.events if e[0] < after.t]
    pg_activity = await activity.stop(pipe.stack.started)
    await statements.end()
    profiles = (
        await profile_services(
            {name: pipe.profiled()[name] for name in PROFILED},
            org,
            profile_s,
            rig.run.logs / "profiles",
        )
        if profile_s
        else {}
    )
    await driver
    drained = await rig.wait_arrivals(org, base + len(sent.events), timeout=30)
    first: dict[str | None, float] = {}
    for r in (await rig.records(org))[base:]:
        first.setdefault(r.event_id, r.arrived)
    latencies = [(first[e[2]] - e[0]) * 1000 for e in measured if e[2] in first]
    accept = [(e[1] - e[0]) * 1000 for e in measured]
    return Latency(
        offered_events_per_s=rate,
        achieved_events_per_s=len(measured) / (after.t - before.t),
        events=len(measured),
        delivered=len(latencies),
        drained=drained,
        late_starts=sent.late_starts,
        request_errors=sent.errors,
        e2e_ms=percentiles(latencies, "p50", "p95", "p99")
        | {"max": max(latencies, default=float("nan"))},
        api_accept_ms=percentiles(accept, "p50", "p95", "p99"),
        stages_ms=await stages(pipe.pool, pipe.org_id(org), measured, first),
        cpu=cpu_report(before, after, len(latencies)),
        postgres_connections=pg_activity,
        postgres_statements=statements.report(len(measured)),
        profiles=profiles,
        latencies=latencies,
    )
