"""The bench's report prints what its phases return: a field renamed in a phase's result and
not in the report failed `make bench` only at its very end, after 15 minutes of measuring."""

from benchmarks import report
from benchmarks.phases.batch import BatchDoor, BatchResult


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
