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
from datetime import UTC, datetime

os.environ.setdefault("OTEL_TRACES_EXPORTER", "none")
os.environ.setdefault("HOOKPOST_ENV", "dev")  # the development encryption key

from libs.delivery.endpoint_cache import EndpointSettings
from libs.delivery.repository import DeliveryRow
from libs.delivery.request import signed_request
from libs.infra import telemetry
from libs.infra.broker.messages import DeliveryTask
from libs.infra.crypto import encrypt

CALLS, WARMUP = 20_000, 1_000
CARRIED = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}
ROW = DeliveryRow(
    status="PENDING",
    attempt_count=0,
    schedule_start=1,
    endpoint=EndpointSettings(
        id="dest_1",
        organization_id="org_1",
        agent_id=None,
        kind="DESTINATION",
        url_enc=encrypt("https://hooks.example.com/x?token=abc"),
        url_masked="https://hooks.example.com/x",
        signature_scheme="v1",
        secret_enc=encrypt("whsec_cost"),
        previous_secret_enc=None,
        previous_secret_expires_at=None,
        api_key_name=None,
        api_key_value_enc=None,
        additional_headers={},
        config={},
        workspace_id=None,
    ),
    recorded_succeeded=None,
    recorded_http_status=None,
)
TASK = DeliveryTask(
    delivery_id="del_1",
    event_id="evt_1",
    endpoint_id="dest_1",
    organization_id="org_1",
    type="mapping.completed",
    event_created_at=datetime(2026, 1, 1, tzinfo=UTC),
    data={"a": 1},
)


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
