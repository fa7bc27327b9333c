"""JSON log lines on stdout, one object per line.

Every line carries the current span's `trace_id` / `span_id` (so a log line leads to its
trace), the ids bound for the current task with `bind_log_context` (event, delivery,
endpoint, organization, attempt) plus any passed as `extra=`, and never a URL's secrets:
every URL in the message, the extras or an exception text is masked.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import trace

from libs.domain.masking import mask_urls_in

_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}

# Each consumed message and each request runs in its own asyncio task, which copies the
# context: ids bound while handling one never leak into another's lines.
_LOG_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("hookpost_log_context", default=None)


def bind_log_context(**ids: Any) -> None:
    """Add ids to every later log line of the current task (and tasks it starts)."""
    _LOG_CONTEXT.set({**(_LOG_CONTEXT.get() or {}), **ids})


def _masked(value: Any) -> Any:
    return mask_urls_in(value) if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_urls_in(record.getMessage()),
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            line["trace_id"] = format(span_context.trace_id, "032x")
            line["span_id"] = format(span_context.span_id, "016x")
        line.update(_LOG_CONTEXT.get() or {})
        line.update({k: _masked(v) for k, v in vars(record).items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            line["exc"] = mask_urls_in(self.formatException(record.exc_info))
        return orjson.dumps(line, default=str).decode("utf-8")


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("hookpost").info("starting", extra={"service": service})
