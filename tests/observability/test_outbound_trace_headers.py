"""The customer-bound POST: no trace headers unless HOOKPOST_PROPAGATE_TRACE_TO_ENDPOINTS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from harness.receiver import Receiver
from libs.delivery.http_client import HttpClient
from libs.infra.url_safety import SafetyPolicy

DEV = SafetyPolicy.from_settings(True, [])
TRACER = TracerProvider().get_tracer("test")
FOREIGN = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def clients() -> AsyncIterator[tuple[HttpClient, HttpClient]]:
    quiet = await HttpClient(DEV, timeout_s=5, max_connections=2).start()
    loud = await HttpClient(DEV, timeout_s=5, max_connections=2, propagate_trace=True).start()
    yield quiet, loud
    await quiet.close()
    await loud.close()


async def test_trace_headers_reach_an_endpoint_only_when_enabled(
    clients: tuple[HttpClient, HttpClient], receiver: Receiver
) -> None:
    quiet, loud = clients
    url = receiver.script("/out", [200])
    with TRACER.start_as_current_span("sender process") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        # even a traceparent handed down with the headers is dropped by default
        result = await quiet.post(url, b"{}", {"traceparent": FOREIGN}, url)
        assert result.succeeded
        result = await loud.post(url, b"{}", {"traceparent": FOREIGN}, url)
        assert result.succeeded
    off, on = await receiver.wait_for("/out", 2)
    assert not {"traceparent", "tracestate"} & {h.lower() for h in off.headers}
    sent = {h.lower(): v for h, v in on.headers.items()}["traceparent"]
    assert sent.split("-")[1] == trace_id  # ours, not the one handed down
    assert sent != FOREIGN
