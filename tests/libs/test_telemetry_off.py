"""Without an exporter no span objects are made per message, attempt or publish; the trace
context the message carries still becomes current (log lines carry it) and travels on."""

from __future__ import annotations

import pytest
from opentelemetry import trace

from libs.infra import telemetry

CARRIED_TRACE, CARRIED_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
HEADERS = {"traceparent": f"00-{CARRIED_TRACE}-{CARRIED_SPAN}-00"}


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """configure_tracing's provider, kept from the process-wide API (it can be set once)."""
    providers: list[object] = []
    monkeypatch.setattr(trace, "set_tracer_provider", providers.append)
    monkeypatch.setattr(telemetry, "_recording", telemetry._recording)  # restored after
    return providers


def ids(span: trace.Span) -> tuple[str, str]:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def test_only_an_exporter_makes_the_process_record(
    monkeypatch: pytest.MonkeyPatch, installed: list[object]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    telemetry.configure_tracing("test")
    assert not telemetry.recording() and len(installed) == 1
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    telemetry.configure_tracing("test")
    assert telemetry.recording()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    telemetry.configure_tracing("test")
    assert not telemetry.recording()


def test_nothing_recording_makes_no_span_but_the_context_goes_on(
    monkeypatch: pytest.MonkeyPatch, installed: list[object]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    telemetry.configure_tracing("test")
    with telemetry.consumer_span("q process", HEADERS, "q") as consumed:
        assert ids(trace.get_current_span()) == ids(consumed) == (CARRIED_TRACE, CARRIED_SPAN)
        with telemetry.internal_span("first attempt") as step:
            with telemetry.client_span("POST", "https://x.test/") as post:
                assert ids(step) == ids(post) == (CARRIED_TRACE, CARRIED_SPAN)
                telemetry.record_http_outcome(post, 500, "boom")  # nothing to record: no-op
        with telemetry.producer_span("d publish", "d", "k") as headers:
            assert headers["traceparent"] == HEADERS["traceparent"]
    assert not trace.get_current_span().get_span_context().is_valid  # detached again


def _tracing_with(exporter: str, monkeypatch: pytest.MonkeyPatch, installed: list[object]) -> None:
    """Tracing configured with `exporter`, its tracer the one `telemetry` hands out."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", exporter)
    telemetry.configure_tracing("test")
    tracer = installed[0].get_tracer("test")  # type: ignore[attr-defined]
    monkeypatch.setattr(telemetry, "tracer", lambda: tracer)


def test_a_message_without_context_still_gets_its_own_trace(
    monkeypatch: pytest.MonkeyPatch, installed: list[object]
) -> None:
    _tracing_with("none", monkeypatch, installed)
    with telemetry.consumer_span("q process", {}, "q") as root:
        trace_id, _ = ids(root)
        assert root.get_span_context().is_valid and not root.is_recording()
        with telemetry.producer_span("d publish", "d", "k") as headers:
            assert headers["traceparent"].split("-")[1] == trace_id


def test_with_an_exporter_each_step_is_a_span_of_its_own(
    monkeypatch: pytest.MonkeyPatch, installed: list[object]
) -> None:
    _tracing_with("console", monkeypatch, installed)
    sampled = {"traceparent": f"00-{CARRIED_TRACE}-{CARRIED_SPAN}-01"}
    with telemetry.consumer_span("q process", sampled, "q") as consumed:
        with telemetry.internal_span("first attempt") as step:
            assert ids(step)[0] == CARRIED_TRACE and ids(step)[1] != CARRIED_SPAN
            assert ids(step) != ids(consumed) and step.is_recording()
    installed[0].shutdown()  # type: ignore[attr-defined]
