"""The bench's printed summary, and its machine-readable last line."""

from __future__ import annotations

from collections.abc import Iterable

from benchmarks import targets
from benchmarks.config import FANOUT
from benchmarks.phases.batch import BatchResult
from benchmarks.phases.sharded import ShardedResult
from benchmarks.results import (
    BenchResults,
    Concurrency,
    CpuReport,
    Fairness,
    Latency,
    Peer,
    PeerLatency,
    PeerThroughput,
    PgConnections,
    Profile,
    Profiles,
    Skeleton,
    StatementsReport,
    Throughput,
    as_dict,
)


def summary_line(results: BenchResults) -> str:
    """The last line; a figure this run did not measure is `nan`."""
    c = results.ceilings
    e2e = results.throughput_1.deliveries_per_s
    fanout = results.throughput_fanout.deliveries_per_s
    lat = results.latency.e2e_ms
    r = targets.ratios(results)
    return (
        f"bench: e2e_dps={e2e:.0f} fanout_dps={fanout:.0f}"
        f" p50_ms={lat['p50']:.1f} p99_ms={lat['p99']:.1f}"
        f" ceiling_broker={c.broker_round_trips_per_s:.0f}"
        f" ceiling_http={c.http_posts_per_s:.0f}"
        f" ratio={e2e / c.broker_round_trips_per_s:.3f}"
        f" skeleton_ratio_1={r.skeleton_1:.3f} skeleton_ratio_fanout={r.skeleton_fanout:.3f}"
        f" batch_dps={r.batch_dps:.0f} peer_ratio={r.peer:.2f}"
    )


def print_targets(results: BenchResults) -> None:
    print("targets      issue 21, this run:")
    for t in targets.evaluate(results):
        verdict = "not measured" if t.met is None else "met" if t.met else "NOT MET"
        print(f"  {t.number}. {t.goal}: {t.measured} — {verdict}")


def print_rows(head: str, rows: Iterable[str]) -> None:
    """A summary block: its first line, then each row under it."""
    print(head)
    for row in rows:
        print(f"             {row}")


def print_skeleton(skeleton: Skeleton) -> None:
    print(
        f"skeleton     fan-out {skeleton.fanout}: {skeleton.deliveries_per_s:,.0f}"
        f" deliveries/s (HTTP in, broker round trip, HTTP out; no database);"
        f" errors {skeleton.request_errors}"
    )
    print(f"             cpu s / 1,000 deliveries {skeleton.cpu.cpu_s_per_1000_deliveries}")
    print_cores(skeleton.cpu)


def print_cores(cpu: CpuReport) -> None:
    print(
        f"             cores busy {cpu.cores_busy}; system "
        f"{cpu.system_cores_busy}, other {cpu.other_processes_cores_busy}"
    )


def print_postgres(connections: PgConnections, statements: StatementsReport | None) -> None:
    by_service = {name: as_dict(s) for name, s in connections.by_service.items()}
    print(f"             postgres connections {by_service}")
    if statements is None:
        print("             postgres statements: pg_stat_statements not loaded by the server")
        return
    print(
        f"             postgres statements {statements.statement_ms_per_1000_deliveries} ms"
        " per 1,000 deliveries; top:"
    )
    for row in statements.top[:5]:
        print(
            f"               {row.ms_per_1000_deliveries:>7} ms/1k  {row.calls:>6} calls"
            f"  plan {row.plan_ms_per_call} + exec {row.exec_ms_per_call} ms"
            f"  {row.query[:60]}"
        )


def print_profiles(profiles: Profiles) -> None:
    for name, prof in profiles.items():
        if isinstance(prof, Profile):
            busy, other = prof.main_thread_busy_pct, prof.other_threads_busy_pct
            top = ", ".join(f"{f} {p}%" for f, p in prof.top_self[:5])
        else:
            busy = other = None
            top = ""
        print(
            f"             py-spy {name} main thread busy {busy}% (other threads {other}%): {top}"
        )


def print_costs(phase: Throughput | Latency) -> None:
    """What a loaded phase cost: CPU per delivery, the kernel's share, run-queue waits,
    PostgreSQL, the cores and the profiles."""
    print(f"             cpu s / 1,000 deliveries {phase.cpu.cpu_s_per_1000_deliveries}")
    print(f"             kernel share {phase.cpu.kernel_share_of_service_cpu}")
    print(f"             run-queue wait s/s {phase.cpu.runqueue_wait_per_s}")
    print_postgres(phase.postgres_connections, phase.postgres_statements)
    print_cores(phase.cpu)
    print_profiles(phase.profiles)


def print_throughput(t: Throughput, broker: float, http: float, skeleton: float) -> None:
    dps = t.deliveries_per_s
    print(f"{t.door}")
    print(
        f"fan-out {t.fanout:<3}  {dps:,.0f} deliveries/s ({t.events_accepted_per_s:,.0f}"
        f" events/s) = {dps / broker:.3f} × broker, {dps / http:.3f} × http,"
        f" {dps / skeleton:.3f} × skeleton;"
        f" errors {t.request_errors}, duplicates {t.duplicate_posts}"
    )
    print_costs(t)


def print_latency(lat: Latency) -> None:
    print_rows(
        f"latency      at {lat.offered_events_per_s:,.0f} events/s: e2e {lat.e2e_ms}"
        f" accept {lat.api_accept_ms}",
        (
            f"{stage}: p50 {f['p50']:.1f} ms, p99 {f['p99']:.1f} ms"
            for stage, f in lat.stages_ms.items()
        ),
    )
    print_costs(lat)


def print_concurrency(r: Concurrency) -> None:
    print_rows(
        f"concurrency  {r.label}: {r.total_deliveries_per_s:,.0f} deliveries/s total;"
        f" cores busy {r.cpu.cores_busy}",
        (
            f"{name}: in-flight mean {rep.in_flight_mean:.0f} max {rep.in_flight_max},"
            f" {rep.deliveries_per_s:,.0f}/s, RSS max {rep.rss_mb_max:.0f} MB"
            for name, rep in r.replicas.items()
        ),
    )


def print_summary(results: BenchResults) -> None:
    c = results.ceilings
    broker, http = c.broker_round_trips_per_s, c.http_posts_per_s
    print()
    print(f"machine      {as_dict(results.machine)}")
    print(
        f"ceilings     broker {broker:,.0f} round trips/s · aiohttp {http:,.0f} POSTs/s · "
        f"postgres {c.postgres_inserts.single_row:,.0f} single-row inserts/s, "
        f"{c.postgres_inserts.batched:,.0f} batched rows/s"
    )
    for fanout in (1, FANOUT):
        print_skeleton(c.skeletons[fanout])
    for t in (results.throughput_1, results.throughput_fanout, results.throughput_amqp):
        print_throughput(t, broker, http, c.skeletons[t.fanout].deliveries_per_s)
    for lat in (results.latency_floor, results.latency):
        print_latency(lat)
    for r in (
        results.concurrency_default,
        results.concurrency_big,
        results.concurrency_slow_endpoint,
    ):
        print_concurrency(r)
    retry = results.retry
    print(f"retries      {retry.retried_deliveries} retried: lateness {retry.lateness_ms}")
    print_fairness(results.fairness)
    if results.batch is not None:
        print_batch(results.batch)
    if results.sharded is not None:
        print_sharded(results.sharded)
    print_peer_beside(results)
    print_targets(results)
    print(f"duration     {results.duration_s} s; exit codes {results.exit_codes}")


def print_fairness(fair: Fairness) -> None:
    fast, beside = fair.fast_alone_ms, fair.fast_beside_slow_ms
    print(
        f"fairness     {fair.rate_per_s:g} events/s: a fast endpoint's p99 {fast['p99']:.1f} ms"
        f" alone, {beside['p99']:.1f} ms beside a 2 s endpoint: {fair.fast_ratio} ×"
        f" (target ≤ 1.5), after {fair.warm_s:g} s of the same load"
    )
    cold, new_slow = fair.fast_alone_cold_ms, fair.fast_beside_new_slow_ms
    if cold is not None and new_slow is not None:
        print(
            f"             from cold (those {fair.warm_s:g} s): {cold['p99']:.1f} ms alone,"
            f" {new_slow['p99']:.1f} ms beside the new 2 s endpoint: {fair.fast_ratio_from_cold} ×"
        )
    control = fair.fast_beside_fast_ms
    if control is not None:
        print(
            f"             the control, beside a second fast endpoint: {control['p99']:.1f} ms"
            f" ({round(control['p99'] / fast['p99'], 2) if fast['p99'] else None} × alone)"
        )
    print(
        f"throttling   a receiver allowing {fair.throttled_limit_per_s}/s got"
        f" {fair.throttled_requests_per_s} requests/s; a bystander's p99"
        f" {fair.bystander_ms['p99']:.1f} ms: {fair.bystander_ratio} × the fast one alone"
        " from cold"
    )
    print(f"             its backlog drained {_drained(fair.throttled_drained_s)}")
    within = fair.within_capacity
    if within is not None:
        print(
            f"  within capacity, {within.rate_per_s:g} events/s each: it got"
            f" {within.requests_per_s} requests/s; the bystander's p99"
            f" {within.bystander_ms['p99']:.1f} ms: {within.bystander_ratio} × the fast one"
            f" alone at the same total; its backlog drained {_drained(within.drained_s)}"
        )


def _drained(seconds: float | None) -> str:
    return f"{seconds:.1f} s after the load" if seconds is not None else "not within the bound"


def print_peer(peer: Peer) -> None:
    print(f"peer         {peer.version}; {peer.setup}")
    for t in (peer.throughput_1, peer.throughput_fanout):
        print_peer_throughput(t)
    for lat in (peer.latency_floor, peer.latency):
        print_peer_latency(lat)


def print_peer_beside(results: BenchResults) -> None:
    """The peer's figures, and ours beside them (same run, load generator and receiver)."""
    if results.peer is None:
        print("peer         not measured: the peer phase failed (its error is in the log above)")
        return
    print_peer(results.peer)
    r = targets.ratios(results)
    floor, lat = results.latency_floor.e2e_ms, results.latency.e2e_ms
    print(
        f"             hookpost beside it: {results.throughput_1.deliveries_per_s:,.0f} and"
        f" {results.throughput_fanout.deliveries_per_s:,.0f} deliveries/s ="
        f" {r.peer_1:.2f} × and {r.peer_fanout:.2f} × the peer; latency p50 {floor['p50']:.1f},"
        f" p99 {floor['p99']:.1f} ms at {results.latency_floor.offered_events_per_s:g}/s,"
        f" p50 {lat['p50']:.1f}, p99 {lat['p99']:.1f} ms at"
        f" {results.latency.offered_events_per_s:,.0f}/s"
    )


def print_peer_throughput(t: PeerThroughput) -> None:
    print(
        f"             fan-out {t.fanout}: {t.deliveries_per_s:,.0f} deliveries/s"
        f" ({t.events_accepted_per_s:,.0f} events/s); errors {t.request_errors},"
        f" drained {t.drained}; cores busy {t.system_cores_busy}"
    )
    print(f"               cpu s / 1,000 deliveries {t.cpu_s_per_1000_deliveries}")


def print_peer_latency(lat: PeerLatency) -> None:
    e2e = lat.e2e_ms
    print(
        f"             latency at {lat.offered_events_per_s:,.0f} events/s: p50 {e2e['p50']:.1f},"
        f" p95 {e2e['p95']:.1f}, p99 {e2e['p99']:.1f} ms ({lat.delivered} of {lat.events}"
        f" delivered); accept {lat.accept_ms}; errors {lat.request_errors}"
    )


def print_sharded(found: ShardedResult) -> None:
    one, many = found.unsharded, found.sharded
    print(
        f"sharded      sender work queue × 1: {one.deliveries_per_s:,.0f} deliveries/s;"
        f" × {many.shards}: {many.deliveries_per_s:,.0f} ({found.ratio} ×);"
        f" every shard carried work {found.every_shard_carried_work};"
        f" every delivery arrived once {found.all_arrived_once}"
    )


def print_batch(found: BatchResult) -> None:
    print(
        f"batch        {found.batch_size} events per request, {found.batches_in_flight} in"
        f" flight, 1 endpoint each: POST /events/batch {found.batch_dps:,.0f} deliveries/s,"
        f" AMQP {found.amqp_batch_dps:,.0f}; errors {found.http.errors},"
        f" {found.amqp.errors}; duplicates {found.http.duplicate_posts},"
        f" {found.amqp.duplicate_posts}"
    )
