"""`python -m benchmarks.hot_path_cost`: CPU time per call of an attempt's fixed costs.

What every attempt and every consumed message pays besides its statements and frames: the
signed request (body, signature, headers from the endpoint's cached settings) and the trace
spans (none are made when nothing records). CPU time (`time.process_time`), not wall time, so
that two builds can be compared on a busy machine: run it in each worktree, alternately.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

os.environ.setdefault("OTEL_TRACES_EXPORTER", "none")
os.environ.setdefault("HOOKPOST_ENV", "dev")  # the development encryption key

from harness.samples import delivery_task, sender_delivery_row
from libs.delivery.request import signed_request
from libs.infra import telemetry

CALLS, WARMUP = 20_000, 1_000
CARRIED = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}
ROW, TASK = sender_delivery_row(), delivery_task()


def sign() -> None:
    signed_request(TASK, ROW, "del_1", 1 << 20)


def first_attempt_spans() -> None:
    """The spans of one first attempt made by the dispatcher (attempt + POST)."""
    with telemetry.internal_span("first attempt"):
        telemetry.annotate(delivery_id="d", event_id="e", endpoint_id="x", organization_id="o")
        with telemetry.client_span("POST", "https://hooks.example.com/x") as span:
            telemetry.record_http_outcome(span, 200, None)


def message_spans() -> None:
    """A consumed message's span and one publish's."""
    with telemetry.consumer_span("q process", CARRIED, "q"):
        with telemetry.producer_span("d publish", "d", "k", delivery_id="d"):
            pass


def cpu_us(call: Callable[[], None]) -> float:
    for _ in range(WARMUP):
        call()
    started = time.process_time()
    for _ in range(CALLS):
        call()
    return (time.process_time() - started) / CALLS * 1e6


def main() -> None:
    telemetry.configure_tracing("hot-path-cost")
    for name, call in (
        ("signed_request", sign),
        ("first-attempt spans", first_attempt_spans),
        ("message + publish spans", message_spans),
    ):
        print(f"{name}: {cpu_us(call):.1f} µs CPU per call")


if __name__ == "__main__":
    main()
