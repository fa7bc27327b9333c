"""The bench's report prints what its phases return: a field renamed in a phase's result and
not in the report failed `make bench` only at its very end, after 15 minutes of measuring."""

from benchmarks import report
from benchmarks.phases.batch import BatchDoor, BatchResult
from benchmarks.results import Fairness, Throttling


def _door(dps: float, errors: dict[str, int]) -> BatchDoor:
    return BatchDoor(
        deliveries_per_s=dps,
        cpu_s_per_1000_deliveries={"api": 0.1},
        other_processes_cores_busy=0.2,
        events_sent=1_000,
        duplicate_posts=0,
        all_delivered=True,
        errors=errors,
    )


def test_the_batch_line_names_each_door_and_its_errors(capsys) -> None:
    found = BatchResult(
        batch_size=100,
        batches_in_flight=6,
        window_s=20.0,
        batch_dps=426.0,
        amqp_batch_dps=382.0,
        target_dps=2_000.0,
        met=False,
        http=_door(426.0, {"timeout": 2}),
        amqp=_door(382.0, {}),
    )
    report.print_batch(found)
    line = capsys.readouterr().out
    assert "POST /events/batch 426 deliveries/s" in line
    assert "AMQP 382" in line
    assert "{'timeout': 2}" in line


def test_the_throttling_lines_say_how_long_the_throttled_backlog_took_to_drain(capsys) -> None:
    def fairness(drained_s: float | None) -> Fairness:
        latency = {"p50": 10.0, "p99": 20.0, "arrived": 100.0, "window": 30.0}
        return Fairness(
            rate_per_s=200.0,
            fast_alone_ms=latency,
            fast_beside_slow_ms=latency,
            fast_ratio=1.0,
            throttled_limit_per_s=50,
            throttled_requests_per_s=41.5,
            bystander_ms=latency,
            bystander_ratio=1.0,
            throttled_drained_s=drained_s,
            within_capacity=Throttling(100.0, 49.0, latency, 3.5, bystander_ratio=1.1),
            fast_beside_fast_ms={**latency, "p99": 30.0},
            warm_s=10.0,
            fast_alone_cold_ms={**latency, "p99": 100.0},
            fast_beside_new_slow_ms={**latency, "p99": 250.0},
            fast_ratio_from_cold=2.5,
        )

    report.print_fairness(fairness(12.5))
    lines = capsys.readouterr().out
    assert "its backlog drained 12.5 s after the load" in lines
    assert "the control, beside a second fast endpoint: 30.0 ms (1.5 × alone)" in lines
    assert "1.0 × (target ≤ 1.5), after 10 s of the same load" in lines
    assert (
        "from cold (those 10 s): 100.0 ms alone, 250.0 ms beside the new 2 s endpoint: 2.5 ×"
        in lines
    )
    assert "within capacity, 100 events/s each: it got 49.0 requests/s" in lines
    assert "1.1 × the fast one alone at the same total; its backlog drained 3.5 s" in lines
    report.print_fairness(fairness(None))
    assert "its backlog drained not within the bound" in capsys.readouterr().out
