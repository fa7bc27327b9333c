"""Phase 1: what the bare components do on this machine, in this run (benchmarks/ceilings.py)."""

from __future__ import annotations

from benchmarks import ceilings
from benchmarks.common import log
from benchmarks.results import Ceilings, PostgresInserts
from benchmarks.rig import Rig


async def measure(rig: Rig) -> Ceilings:
    log("ceilings: broker round trips (20,000 × 1 KB, confirms, quorum queue)")
    broker = await ceilings.broker_round_trips_per_s(rig.env.amqp_url, 20_000)
    log(f"  broker {broker:,.0f}/s; aiohttp POSTs to the receiver process (20,000, 100 open)")
    await ceilings.http_posts_per_s(f"{rig.receiver_url}/warm/x", 2_000, 100)
    http = await ceilings.http_posts_per_s(f"{rig.receiver_url}/ceiling/x", 20_000, 100)
    log(f"  http {http:,.0f}/s; PostgreSQL inserts")
    pg = await ceilings.postgres_inserts_per_s(rig.env.dsn)
    log(f"  postgres single-row {pg['single_row']:,.0f}/s, batched {pg['batched']:,.0f} rows/s")
    return Ceilings(broker, http, PostgresInserts(**pg))
