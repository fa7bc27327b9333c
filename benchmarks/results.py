"""What each bench phase measured, typed; and the run's JSON (bench-results/bench-<run>.json).

Field names are the JSON's keys. A field with PRIVATE metadata (the raw series the plots are
drawn from) stays out of the JSON; floats are rounded to 3 places there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the phases import this module: only the names here
    from benchmarks.phases.batch import BatchResult
    from benchmarks.phases.sharded import ShardedResult

Percentiles = dict[str, float]  # {"p50": …, "p99": …} (and "n", "min", "max" where given)


PRIVATE = {"private": True}  # a field's metadata: not in the JSON


def to_json(value: Any) -> Any:
    """A plain JSON value: dataclasses as dicts of their public fields, floats rounded."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "json_fields"):
            return to_json(value.json_fields())
        return {
            f.name: to_json(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not f.metadata.get("private")
        }
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):  # (a tuple is kept whole, as it always was)
        return [to_json(v) for v in value]
    if isinstance(value, float):
        return round(value, 3)
    return value


def as_dict(value: Any) -> dict[str, Any]:
    """A result's fields as a dict, for the summary lines that print one whole."""
    return dataclasses.asdict(value)


# ------------------------------------------------------------------ what every phase reports


@dataclass
class CpuReport:
    window_s: float
    cpu_s: dict[str, float]
    cpu_s_per_1000_deliveries: dict[str, float]
    cores_busy: dict[str, float]
    kernel_share_of_service_cpu: dict[str, float]
    runqueue_wait_per_s: dict[str, float]  # s/s a service's main thread waited for a CPU
    system_cores_busy: float
    other_processes_cores_busy: float


@dataclass
class ServiceConnections:
    connections_open_mean: float
    connections_busy_mean: float
    busy_by_wait_event: dict[str, int]


@dataclass
class PgConnections:
    samples: int
    by_service: dict[str, ServiceConnections]


@dataclass
class StatementRow:
    query: str
    calls: int
    rows_per_call: float
    plan_ms_per_call: float
    exec_ms_per_call: float
    ms_per_1000_deliveries: float


@dataclass
class StatementsReport:
    statement_ms_per_1000_deliveries: float
    top: list[StatementRow]


@dataclass
class Profile:
    """py-spy's summary of one service's main thread (benchmarks/profile.py)."""

    main_thread_samples: int
    main_thread_busy_pct: float
    other_threads_busy_pct: float
    other_threads_top: list[tuple[str, float]]
    top_self: list[tuple[str, float]]
    top_self_by_library: list[tuple[str, float]]
    top_inclusive: list[tuple[str, float]]


@dataclass
class ProfileFailed:
    error: str = "py-spy failed"


Profiles = dict[str, Profile | ProfileFailed]


# ------------------------------------------------------------------ the phases


@dataclass
class PostgresInserts:
    single_row: float
    batched: float


@dataclass
class Skeleton:
    fanout: int
    deliveries_per_s: float
    request_errors: dict[str, int]
    cpu: CpuReport


@dataclass
class Ceilings:
    broker_round_trips_per_s: float
    http_posts_per_s: float
    postgres_inserts: PostgresInserts
    skeletons: dict[int, Skeleton] = field(default_factory=dict)  # by fan-out

    def json_fields(self) -> dict[str, Any]:
        fields = {
            "broker_round_trips_per_s": self.broker_round_trips_per_s,
            "http_posts_per_s": self.http_posts_per_s,
            "postgres_inserts": self.postgres_inserts,
        }
        return fields | {f"skeleton_{n}": s for n, s in self.skeletons.items()}


@dataclass
class ThroughputSeries:
    t0: float  # the phase started
    w0: float  # the measured window
    w1: float
    arrivals: np.ndarray  # every delivery's arrival at the receiver


@dataclass
class Throughput:
    fanout: int
    door: str
    deliveries_per_s: float
    events_accepted_per_s: float
    deliveries_in_window: int
    events_sent_total: int
    request_errors: dict[str, int]
    drained: bool
    duplicate_posts: int
    api_accept_ms: Percentiles
    cpu: CpuReport
    postgres_connections: PgConnections
    postgres_statements: StatementsReport | None
    profiles: Profiles
    series: ThroughputSeries = field(repr=False, metadata=PRIVATE)


@dataclass
class Latency:
    offered_events_per_s: float
    achieved_events_per_s: float
    events: int
    delivered: int
    drained: bool
    late_starts: int
    request_errors: dict[str, int]
    e2e_ms: Percentiles
    api_accept_ms: Percentiles
    stages_ms: dict[str, Percentiles]
    cpu: CpuReport
    postgres_connections: PgConnections
    postgres_statements: StatementsReport | None
    profiles: Profiles
    latencies: list[float] = field(repr=False, metadata=PRIVATE)  # ms, every delivered event's


@dataclass
class Replica:
    deliveries: int
    in_flight_mean: float
    in_flight_p50: float
    in_flight_max: int
    deliveries_per_s: float
    rss_mb_max: float
    rss_mb_start: float
    connections_to_receiver: int


@dataclass
class Concurrency:
    label: str
    endpoint_ms: int
    prefetch: int
    deliveries: int
    expected: int
    drained: bool
    saturated_window_s: float
    total_deliveries_per_s: float
    unattributed_deliveries: int
    cpu: CpuReport
    postgres_connections: PgConnections
    replicas: dict[str, Replica]
    # seconds after the resume ("t"), and POSTs open per replica at each of them
    series: dict[str, np.ndarray] = field(repr=False, metadata=PRIVATE)


@dataclass
class Retry:
    tier_ms: int
    events: int
    retried_deliveries: int
    drained: bool
    lateness_ms: Percentiles


@dataclass
class RssRange:
    before: float
    max: float


@dataclass
class SlowRoom:
    events: int
    request_errors: dict[str, int]
    all_arrived: bool
    made_by_dispatcher: float
    handed_to_senders: float
    dispatcher_rss_mb: RssRange


@dataclass
class Throttling:
    """A throttled endpoint beside a bystander org, each at `rate_per_s` events/s."""

    rate_per_s: float
    requests_per_s: float  # what the throttled endpoint got (target ≈ its limit)
    bystander_ms: dict[str, float]
    drained_s: float | None  # from its load's end until each throttled event had a 200
    bystander_ratio: float | None = None  # its p99 ÷ the fast endpoint's alone


@dataclass
class Fairness:
    """benchmarks/phases/fairness.py: latencies in ms ({"p50", "p99", "arrived", "window"})."""

    rate_per_s: float
    fast_alone_ms: dict[str, float]
    fast_beside_slow_ms: dict[str, float]
    fast_ratio: float | None  # target ≤ 1.5
    throttled_limit_per_s: int
    throttled_requests_per_s: float  # target ≈ throttled_limit_per_s
    bystander_ms: dict[str, float]
    bystander_ratio: float | None
    # from the throttled load's end until each of its events had a 200 (None: not in the bound)
    throttled_drained_s: float | None = None
    within_capacity: Throttling | None = None  # the same at half the rate each
    # the control: the fast endpoint beside a second fast one (the same load, nothing slow)
    fast_beside_fast_ms: dict[str, float] | None = None
    # The windows above follow `warm_s` of the same load, unmeasured; the warm-up windows
    # themselves: the fast endpoint from cold, alone and beside a new 2 s endpoint.
    warm_s: float = 0.0
    fast_alone_cold_ms: dict[str, float] | None = None
    fast_beside_new_slow_ms: dict[str, float] | None = None
    fast_ratio_from_cold: float | None = None


@dataclass
class PeerThroughput:
    """The peer's closed loop (benchmarks/phases/peer.py): its CPU counts every process of
    its web server and of its Celery worker (pool children included)."""

    fanout: int
    deliveries_per_s: float
    events_accepted_per_s: float
    request_errors: dict[str, int]
    drained: bool
    cpu_s_per_1000_deliveries: dict[str, float]
    system_cores_busy: float


@dataclass
class PeerLatency:
    offered_events_per_s: float
    events: int
    delivered: int
    request_errors: dict[str, int]
    e2e_ms: Percentiles  # the load generator's send → the first POST's arrival
    accept_ms: Percentiles


@dataclass
class Peer:
    """django-webhook beside hookpost, through the same load generator to the same receiver."""

    version: str
    setup: str
    throughput_1: PeerThroughput
    throughput_fanout: PeerThroughput
    latency_floor: PeerLatency
    latency: PeerLatency


@dataclass
class Machine:
    cpu: str
    cores: int | None
    ram_gb: float
    kernel: str
    python: str
    loadavg_at_start: tuple[float, float, float]
    python_loop_ms: float  # 1M integer additions in a Python loop, best of 3
    wakeup_send_us: float  # one loopback TCP send to a process asleep reading it


@dataclass
class Versions:
    rabbitmq: str
    postgresql: str


@dataclass
class BenchResults:
    run: str
    started: str
    machine: Machine
    versions: Versions
    ceilings: Ceilings
    throughput_1: Throughput
    throughput_fanout: Throughput
    throughput_amqp: Throughput
    latency_floor: Latency
    latency: Latency
    concurrency_default: Concurrency
    concurrency_big: Concurrency
    concurrency_slow_endpoint: Concurrency
    retry: Retry
    fairness: Fairness
    exit_codes: dict[str, int | None]
    duration_s: float
    peer: Peer | None = None  # None: the peer phase failed (the run says why)
    sharded: ShardedResult | None = None
    batch: BatchResult | None = None
