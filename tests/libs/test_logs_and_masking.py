"""JSON log lines: trace and span ids, bound ids, and no URL secrets; one mask_url."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from libs.domain.masking import mask_url, mask_urls_in
from libs.infra import telemetry
from libs.infra.logs import JsonFormatter

TOKEN = "s3cr3t-token-value"


@pytest.fixture
def log_lines() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("hookpost.test.logs")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, stream


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_mask_url_masks_query_values_and_credentials() -> None:
    assert (
        mask_url(f"https://h.example/x?token={TOKEN}&a=1")
        == "https://h.example/x?token=••••&a=••••"
    )
    assert mask_url("https://user:pw@h.example:8443/p#frag") == "https://••••@h.example:8443/p"
    assert mask_url(f"https://h.example/x?{TOKEN}") == "https://h.example/x?••••"
    assert mask_url("https://h.example/plain") == "https://h.example/plain"
    assert mask_url("http://[::1/broken") == "••••"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://hooks.slack.com/services/T024BE7LD/B01ABCDEF12/Dx3kVq9ZpL0mW8nR2tY7uB4e",
            "https://hooks.slack.com/services/T024BE7LD/B01ABCDEF12/••••",
        ),
        (
            "https://discord.com/api/webhooks/123456789012345678/"
            "AbCdEf-GhIjKl_MnOpQrStUvWxYz0123456789abcdefGHIJKL",
            "https://discord.com/api/webhooks/123456789012345678/••••",
        ),
        (
            "https://h.example/hooks;token=s3cr3t;v=2/x",
            "https://h.example/hooks;token=••••;v=••••/x",
        ),
        (
            "https://hook.eu1.make.com/550e8400-e29b-41d4-a716-446655440000?a=1",
            "https://hook.eu1.make.com/••••?a=••••",
        ),
        (
            "https://h.example/v1/deliveryDestinations/2026/orders",
            "https://h.example/v1/deliveryDestinations/2026/orders",
        ),
    ],
)
def test_mask_url_masks_tokens_in_paths(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_mask_urls_in_text_masks_every_url_and_nothing_else() -> None:
    text = (
        f"POST https://h.example/hook?key={TOKEN} failed; broker amqp://guest:pw@rabbit:5672/"
        " is down, see 'https://docs.example/x'"
    )
    masked = mask_urls_in(text)
    assert TOKEN not in masked and ":pw@" not in masked
    assert "https://h.example/hook?key=••••" in masked
    assert "amqp://••••@rabbit:5672/" in masked
    assert "'https://docs.example/x'" in masked
    assert masked.startswith("POST ") and " failed; broker " in masked


def test_a_line_carries_trace_and_span_ids_and_the_bound_ids(log_lines) -> None:
    logger, stream = log_lines
    provider = TracerProvider()
    tracer = provider.get_tracer("test")

    async def handle_one(delivery_id: str) -> str:
        with tracer.start_as_current_span("work") as span:
            telemetry.annotate(delivery_id=delivery_id, event_id="evt_1", endpoint_id="dst_1")
            await asyncio.sleep(0)  # interleave with the other task
            logger.info("attempt failed", extra={"http_status": 500})
            return format(span.get_span_context().span_id, "016x")

    async def both() -> list[str]:
        return await asyncio.gather(handle_one("dlv_a"), handle_one("dlv_b"))

    span_ids = asyncio.run(both())
    logger.info("outside any span")
    first, second, outside = lines(stream)
    assert [first["delivery_id"], second["delivery_id"]] == ["dlv_a", "dlv_b"]
    assert [first["span_id"], second["span_id"]] == span_ids
    assert len(first["trace_id"]) == 32 and first["trace_id"] != second["trace_id"]
    assert first["event_id"] == "evt_1" and first["endpoint_id"] == "dst_1"
    assert first["http_status"] == 500 and first["msg"] == "attempt failed"
    # ids bound in a task stay in that task
    assert "trace_id" not in outside and "delivery_id" not in outside


def test_urls_are_masked_in_message_extras_and_exceptions(log_lines) -> None:
    logger, stream = log_lines
    url = f"https://user:pw@hooks.example/in?token={TOKEN}"
    try:
        raise ConnectionError(f"cannot connect to {url}")
    except ConnectionError:
        logger.exception("POST %s failed", url, extra={"url": url, "attempt": 2})
    [line] = lines(stream)
    assert TOKEN not in stream.getvalue() and "user:pw" not in stream.getvalue()
    assert line["msg"] == "POST https://••••@hooks.example/in?token=•••• failed"
    assert line["url"] == "https://••••@hooks.example/in?token=••••"
    assert "cannot connect to https://••••@hooks.example/in?token=••••" in line["exc"]
    assert line["attempt"] == 2


def test_an_unsupported_exporter_or_protocol_fails_at_startup(monkeypatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(telemetry.TelemetryConfigError, match="zipkin"):
        telemetry.configure_tracing("test")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(telemetry.TelemetryConfigError, match="http/protobuf"):
        telemetry.configure_tracing("test")


def test_trace_context_round_trips_through_amqp_style_headers() -> None:
    provider = TracerProvider()
    with provider.get_tracer("test").start_as_current_span("publish") as span:
        headers = telemetry.trace_headers()
    ctx = span.get_span_context()
    assert headers["traceparent"].startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")
    # AMQP header values can arrive as bytes, names in any case
    extracted = telemetry.extract_context({"TraceParent": headers["traceparent"].encode()})
    parent = trace.get_current_span(extracted).get_span_context()
    assert (parent.trace_id, parent.span_id) == (ctx.trace_id, ctx.span_id)
    assert telemetry.strip_trace_headers({**headers, "X-Other": "1"}) == {"X-Other": "1"}


def test_without_an_exporter_spans_are_not_recorded_but_ids_and_context_remain(
    monkeypatch, log_lines
) -> None:
    logger, stream = log_lines
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    tracer = telemetry.build_provider("test").get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        telemetry.annotate(delivery_id="dlv_1")
        logger.info("attempt failed")
        headers = telemetry.trace_headers()
    ctx = span.get_span_context()
    assert not span.is_recording()  # nothing would export it: no attribute work either
    assert ctx.is_valid  # fresh ids all the same ...
    (line,) = lines(stream)
    assert line["trace_id"] == f"{ctx.trace_id:032x}"  # ... which the logs carry
    assert line["delivery_id"] == "dlv_1"
    # and the context still travels, marked not sampled
    _version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (trace_id, span_id) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert int(flags, 16) & 0x01 == 0


def test_with_an_exporter_spans_are_recorded(monkeypatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    provider = telemetry.build_provider("test")
    with provider.get_tracer("test").start_as_current_span("work") as span:
        assert span.is_recording()
    provider.shutdown()
