"""Traces: the tracer provider from the standard `OTEL_*` variables, and W3C trace context
(`traceparent` / `tracestate`) carried in AMQP message headers between the services.

One trace follows an event: api `POST /api/v1/events` (FastAPI's own SERVER span, which
continues a caller's `traceparent`; or the AMQP producer's own context)
→ events publish → dispatcher process → deliveries publish (one per delivery) → sender
process → `POST` (the outbound HTTP call) → retry publish → sender process … → dead process.
Every hop that publishes injects the context into the message's headers; every consumer
extracts it, so the retry tiers and the dead-letter exchange (which keep headers) continue
the trace by themselves.

Exporters (`OTEL_TRACES_EXPORTER`, comma-separated): `otlp` (OTLP over HTTP/protobuf, every
`OTEL_EXPORTER_OTLP_*` variable applies), `console` (JSON spans on stdout, for local runs),
`none` (the default: nothing is exported, so nothing is recorded either, and no span object
is made per attempt or publish: a message continues the context its headers carry, or gets
one non-recording root span when they carry none, so logs still carry a trace id and the
context still travels in headers, with the sampled flag off). With an exporter,
`OTEL_TRACES_SAMPLER` / `_ARG` choose sampling.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from libs.infra.logs import bind_log_context

log = logging.getLogger("hookpost.telemetry")

TRACER_NAME = "hookpost"
TRACE_HEADERS = ("traceparent", "tracestate")
ATTRIBUTE_PREFIX = "hookpost."
SUPPORTED_OTLP_PROTOCOL = "http/protobuf"

# W3C trace context only, whatever OTEL_PROPAGATORS says: it is the documented AMQP contract.
_PROPAGATOR = TraceContextTextMapPropagator()


class TelemetryConfigError(ValueError):
    """An OTEL_* setting this build cannot honour (fail at startup, not silently)."""


def _exporter(name: str) -> SpanExporter | None:
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", SUPPORTED_OTLP_PROTOCOL),
        )
        if protocol != SUPPORTED_OTLP_PROTOCOL:
            raise TelemetryConfigError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported: hookpost ships the"
                f" OTLP exporter for {SUPPORTED_OTLP_PROTOCOL!r} (port 4318) only"
            )
        # Imported here: the exporter pulls in protobuf, which `none` runs never need.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint, headers, timeout: from OTEL_EXPORTER_OTLP_*
    raise TelemetryConfigError(
        f"OTEL_TRACES_EXPORTER={name!r} is not supported (use otlp, console or none)"
    )


# Whether this process's provider records anything (configure_tracing). When it does not, the
# span helpers below make no span objects: even a non-recording span cost ~50 µs each (ids,
# sampler, context attach), two or three per attempt, 8 % of the dispatcher at fan-out
# (BENCHMARKS.md, issue 21).
_recording = False


def recording() -> bool:
    return _recording


def configure_tracing(service: str) -> None:
    """Install the tracer provider for this process (call once, at startup)."""
    global _recording
    _recording = False
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    provider = build_provider(service)
    trace.set_tracer_provider(provider)
    _recording = provider.sampler is not ALWAYS_OFF


def build_provider(service: str) -> TracerProvider:
    """The provider the OTEL_* variables describe.

    With no exporter, spans are never recorded (ALWAYS_OFF): a recorded span that nobody
    exports is pure cost (BENCHMARKS.md). Non-recording spans still get fresh ids, so log
    lines keep their trace and span ids and the trace context still crosses every hop.
    """
    names = [
        n.strip().lower()
        for n in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",")
        if n.strip()
    ]
    exporters = [exporter for exporter in map(_exporter, names) if exporter is not None]
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, which win.
    defaults = {"service.name": f"hookpost-{service}", "service.namespace": "hookpost"}
    if os.environ.get("OTEL_SERVICE_NAME"):
        defaults.pop("service.name")
    provider = TracerProvider(
        resource=Resource.create(defaults),
        sampler=None if exporters else ALWAYS_OFF,  # None: OTEL_TRACES_SAMPLER / _ARG
    )
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    log.info("tracing configured", extra={"exporters": names, "recording": bool(exporters)})
    return provider


def shutdown_tracing() -> None:
    """Export what is still buffered (the provider also does this at interpreter exit)."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if shutdown is not None:
        shutdown()


@functools.cache
def tracer() -> trace.Tracer:
    """One tracer per process. The SDK's get_tracer registers a warnings filter and compares
    instrumentation scopes (attribute mappings) on every call, too costly per message
    (BENCHMARKS.md). Caching is safe before configure_tracing too: the API's proxy tracer
    follows the provider installed later."""
    return trace.get_tracer(TRACER_NAME)


# ---- carrying the context in headers ---------------------------------------------------


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """AMQP header values may arrive as bytes; HTTP header names in any case."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            lowered = key.lower()
            value = next((v for k, v in carrier.items() if str(k).lower() == lowered), None)
        if value is None:
            return None
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("latin-1")
        return [str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [str(k) for k in carrier]


_GETTER = _HeaderGetter()


def extract_context(carrier: Mapping[str, Any] | None) -> otel_context.Context:
    """The context a message or request carries (an empty one when it carries none)."""
    return _PROPAGATOR.extract(carrier or {}, getter=_GETTER)


def trace_headers(ctx: otel_context.Context | None = None) -> dict[str, str]:
    """`traceparent` (and `tracestate`) of `ctx` or the current span; empty without a span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx)
    return carrier


def strip_trace_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in TRACE_HEADERS}


# ---- spans -------------------------------------------------------------------------------


class _CurrentSpan(AbstractContextManager[Span]):
    """What a span helper returns when nothing records: the current span goes on. One shared
    object, not a generator per use: an attempt's objects live as long as its POST, and the
    collector walks each of them (BENCHMARKS.md, "Session 18")."""

    def __enter__(self) -> Span:
        return trace.get_current_span()

    def __exit__(self, *_: object) -> None:
        return None


_CURRENT_SPAN = _CurrentSpan()


def _attributes(ids: Mapping[str, Any]) -> dict[str, Any]:
    return {(k if "." in k else ATTRIBUTE_PREFIX + k): v for k, v in ids.items() if v is not None}


def annotate(**ids: Any) -> None:
    """Put ids (event_id, delivery_id, endpoint_id, organization_id, attempt…) on the current
    span as `hookpost.<name>` attributes and on every log line of the current task."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(_attributes(ids))
    bind_log_context(**{k: v for k, v in ids.items() if v is not None})


@contextmanager
def consumer_span(
    name: str, headers: Mapping[str, Any] | None, destination: str, **ids: Any
) -> Iterator[Span]:
    """A message being handled, continuing the trace its headers carry. When nothing records,
    the carried context itself becomes current (no span of our own): its trace id is the
    one logs and later publishes carry."""
    carried = extract_context(headers)
    if not _recording:
        parent = trace.get_current_span(carried)
        if parent.get_span_context().is_valid:
            token = otel_context.attach(carried)
            try:
                yield parent
            finally:
                otel_context.detach(token)
            return
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "process",
        "messaging.destination.name": destination,
        **_attributes(ids),
    }
    with tracer().start_as_current_span(
        name, context=carried, kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span


def internal_span(name: str, **ids: Any) -> AbstractContextManager[Span]:
    """A step inside one process that gets its own ids (one of several concurrent ones); when
    nothing records, the current span goes on (ids would be set on no span anyway)."""
    if not _recording:
        return _CURRENT_SPAN
    return tracer().start_as_current_span(name, kind=SpanKind.INTERNAL, attributes=_attributes(ids))


@contextmanager
def carried_span(name: str, carrier: Mapping[str, Any] | None, **ids: Any) -> Iterator[None]:
    """One item of a message whose own trace travelled apart from the message's headers (an
    event the api grouped with other requests' events): handled in that trace, in a span
    linked to the message's. When nothing records, its context itself becomes current, so its
    log lines and later publishes carry its trace. Without a valid carrier, nothing changes."""
    carried = extract_context(carrier)
    if not trace.get_current_span(carried).get_span_context().is_valid:
        yield
        return
    if not _recording:
        token = otel_context.attach(carried)
        try:
            yield
        finally:
            otel_context.detach(token)
        return
    message = trace.get_current_span().get_span_context()
    with tracer().start_as_current_span(
        name,
        context=carried,
        kind=SpanKind.INTERNAL,
        links=[Link(message)] if message.is_valid else None,
        attributes=_attributes(ids),
    ):
        yield


@contextmanager
def producer_span(
    name: str,
    destination: str,
    routing_key: str,
    parent: Mapping[str, Any] | None = None,
    **ids: Any,
) -> Iterator[dict[str, str]]:
    """A publish; yields the trace headers to put on the message.

    `parent`: a stored carrier to continue (the outbox relay's events), else the current span.
    When nothing records: that context's own headers, no span made.
    """
    if not _recording:
        yield trace_headers(extract_context(parent) if parent else None)
        return
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "publish",
        "messaging.destination.name": destination,
        "messaging.rabbitmq.destination.routing_key": routing_key,
        **_attributes(ids),
    }
    ctx = extract_context(parent) if parent else None
    with tracer().start_as_current_span(
        name, context=ctx, kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        yield trace_headers(trace.set_span_in_context(span))


def client_span(name: str, url_masked: str, method: str = "POST") -> AbstractContextManager[Span]:
    """An outbound HTTP call; only the masked URL is recorded (never tokens or credentials).
    When nothing records, the current span goes on."""
    if not _recording:
        return _CURRENT_SPAN
    return tracer().start_as_current_span(
        name,
        kind=SpanKind.CLIENT,
        attributes={"http.request.method": method, "url.full": url_masked},
    )


def record_http_outcome(span: Span, http_status: int | None, error: str | None) -> None:
    if http_status is not None:
        span.set_attribute("http.response.status_code", http_status)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error[:200]))
