"""The bench's knobs (BENCH_* in the environment) and the fixed shape of a run."""

from __future__ import annotations

import os

from harness.process import ROOT
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
# × 10 endpoints = 6,000 deliveries queued while the senders are paused
SLOW_EVENTS = int(os.environ.get("BENCH_SLOW_EVENTS", 600))
RETRY_EVENTS = 300
RETRY_SCALE = 1 / 60  # the 60 s first tier of A/B/C endpoints becomes 1,000 ms
BIG_PREFETCH = int(os.environ.get("BENCH_BIG_PREFETCH", 2400))  # issue 21: ≥ 2,000 in flight
DEFAULT_PREFETCH = Settings.model_fields["sender_prefetch"].default
FANOUT = 10
PROFILED = ("api", "dispatcher", "sender-1")  # the services py-spy samples

# How the receiver answers each scenario (harness/receiver/behaviours.py); others: 200 at
# once. "slower": in flight is bounded by prefetch rather than by CPU.
SLOW_S = {"slow": 0.2, "slower": 2.0, "wide": 2.0}
RECEIVER_ROUTES = {
    **{k: f"slow:{v}" for k, v in SLOW_S.items()},
    "flaky": "first-fails",
    "fairslow": f"slow:{SLOW_S['slower']}",
    "throttled": "rate-limit:50",
    "throttledhalf": "rate-limit:50",
}

# One org per scenario, each with its subscriptions (`<receiver>/<scenario>/<n>`).
ORGS = ["tput", "fanout", "amqp", "floor", "lat", "slow", "slower", "flaky", "wide"]
# The fairness phase's own orgs and endpoints (benchmarks/phases/fairness.py).
FAIR_RATE = 200.0  # events/s
FAIR_S = float(os.environ.get("BENCH_FAIR_S", 20))
# Unmeasured load before each fairness window: past a new 2 s endpoint's ramp (its first
# answers at 2 s, then its limit doubling to the 400 in flight it needs), with a margin.
FAIR_WARM_S = float(os.environ.get("BENCH_FAIR_WARM_S", 10))
THROTTLED_PER_S = 50
SUBSCRIPTIONS = (
    ("tput", 1), ("fanout", FANOUT), ("amqp", 1), ("floor", 1), ("lat", 1),
    ("slow", FANOUT), ("slower", FANOUT), ("flaky", 1), ("wide", 100),
)  # fmt: skip
# "wide": the 2 s endpoint as 100 endpoints, so that a sender replica's own capacity is what
# the concurrency phase measures: each endpoint's adaptive limit (libs/delivery/limits.py,
# 32 to start, a share of HOOKPOST_ENDPOINT_MAX_CONCURRENCY per engine) keeps 10 endpoints
# near 150 in flight per replica. Fewer events, as each has 100 deliveries.
WIDE_EVENTS = int(os.environ.get("BENCH_WIDE_EVENTS", 200))

OUT = ROOT / "bench-results"
DOCS = ROOT / "docs" / "bench"
