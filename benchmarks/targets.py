"""Issue 21's targets 1–7, each with what this run measured and whether it is met; and the
ratios the bench's last line carries."""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchmarks.results import BenchResults

SKELETON_RATIO = 0.8  # targets 1 and 2: × the design's own ceiling, same run
BATCH_DPS = 2000.0  # target 3
LATENCY_P50_MS, LATENCY_P99_MS, FLOOR_P99_MS = 20.0, 100.0, 20.0  # target 4
PEER_RATIO = 5.0  # target 5: × django-webhook's deliveries/s, at 1 endpoint and fan-out 10
SLOW_IN_FLIGHT, SLOW_RSS_MB = 2000, 256.0  # target 6: per sender replica
RETRY_LATE_P99_MS = 1000.0  # target 7


@dataclass(frozen=True)
class Target:
    number: int
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run


@dataclass(frozen=True)
class Ratios:
    """The figures targets 1, 2, 3 and 5 compare; nan where this run did not measure one."""

    skeleton_1: float
    skeleton_fanout: float
    batch_dps: float
    peer_1: float
    peer_fanout: float

    @property
    def peer(self) -> float:
        """The smaller of the two peer ratios: the one target 5 stands or falls by."""
        return min(self.peer_1, self.peer_fanout)


def ratios(results: BenchResults) -> Ratios:
    skeletons = results.ceilings.skeletons
    ours_1 = results.throughput_1.deliveries_per_s
    ours_fanout = results.throughput_fanout.deliveries_per_s
    skeleton_fanout = skeletons[results.throughput_fanout.fanout].deliveries_per_s
    peer = results.peer
    return Ratios(
        skeleton_1=_ratio(ours_1, skeletons[1].deliveries_per_s),
        skeleton_fanout=_ratio(ours_fanout, skeleton_fanout),
        batch_dps=results.batch.batch_dps if results.batch else math.nan,
        peer_1=_ratio(ours_1, peer.throughput_1.deliveries_per_s) if peer else math.nan,
        peer_fanout=(
            _ratio(ours_fanout, peer.throughput_fanout.deliveries_per_s) if peer else math.nan
        ),
    )


def _ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs > 0 else math.nan


def _at_least(value: float, goal: float) -> bool | None:
    return None if math.isnan(value) else value >= goal


def evaluate(results: BenchResults) -> list[Target]:
    r = ratios(results)
    skeletons = results.ceilings.skeletons
    lat, floor = results.latency.e2e_ms, results.latency_floor.e2e_ms
    slow = results.concurrency_slow_endpoint.replicas.values()
    in_flight = min((rep.in_flight_mean for rep in slow), default=math.nan)
    rss = max((rep.rss_mb_max for rep in slow), default=math.nan)
    late = results.retry.lateness_ms["p99"]
    peer = results.peer
    batch = "no batch phase in this run"
    if not math.isnan(r.batch_dps):
        batch = f"{r.batch_dps:,.0f} deliveries/s"
    return [
        Target(
            1, f"1 endpoint ≥ {SKELETON_RATIO} × skeleton",
            f"{r.skeleton_1:.2f} × ({results.throughput_1.deliveries_per_s:,.0f} against"
            f" {skeletons[1].deliveries_per_s:,.0f} deliveries/s)",
            _at_least(r.skeleton_1, SKELETON_RATIO),
        ),
        Target(
            2, f"fan-out ≥ {SKELETON_RATIO} × skeleton",
            f"{r.skeleton_fanout:.2f} × ({results.throughput_fanout.deliveries_per_s:,.0f}"
            f" against {skeletons[results.throughput_fanout.fanout].deliveries_per_s:,.0f})",
            _at_least(r.skeleton_fanout, SKELETON_RATIO),
        ),
        Target(
            3, f"batch ingest ≥ {BATCH_DPS:,.0f} deliveries/s",
            batch,
            _at_least(r.batch_dps, BATCH_DPS),
        ),
        Target(
            4, f"at 50 % p50 ≤ {LATENCY_P50_MS:g}, p99 ≤ {LATENCY_P99_MS:g} ms;"
            f" at {results.latency_floor.offered_events_per_s:g}/s p99 ≤ {FLOOR_P99_MS:g} ms",
            f"p50 {lat['p50']:.1f}, p99 {lat['p99']:.1f} ms at"
            f" {results.latency.offered_events_per_s:,.0f}/s; p99 {floor['p99']:.1f} ms",
            lat["p50"] <= LATENCY_P50_MS
            and lat["p99"] <= LATENCY_P99_MS
            and floor["p99"] <= FLOOR_P99_MS,
        ),
        Target(
            5, f"≥ {PEER_RATIO:g} × django-webhook at 1 endpoint and fan-out",
            "the peer phase failed" if peer is None else
            f"{r.peer_1:.1f} × at 1 ({peer.throughput_1.deliveries_per_s:,.0f}/s),"
            f" {r.peer_fanout:.1f} × at fan-out ({peer.throughput_fanout.deliveries_per_s:,.0f}/s)",
            _at_least(r.peer, PEER_RATIO),
        ),
        Target(
            6, f"≥ {SLOW_IN_FLIGHT:,} concurrent 2 s POSTs per sender within {SLOW_RSS_MB:g} MB",
            f"{in_flight:,.0f} in flight (mean, fewest replica), RSS max {rss:.0f} MB",
            in_flight >= SLOW_IN_FLIGHT and rss <= SLOW_RSS_MB,
        ),
        Target(
            7, f"retries ≤ {RETRY_LATE_P99_MS:,.0f} ms late at p99",
            f"p99 {late:,.0f} ms late",
            late <= RETRY_LATE_P99_MS,
        ),
    ]  # fmt: skip
