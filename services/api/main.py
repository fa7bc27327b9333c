"""`hookpost api`: serve the API with uvicorn; SIGTERM drains and exits 0."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import uvicorn

from libs.infra.heap import configure_garbage_collector
from libs.infra.logs import configure_logging
from libs.infra.settings import get_settings
from libs.infra.telemetry import configure_tracing
from services.api.app import create_app
from services.api.http_protocol import ShapedHttpToolsProtocol


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run(host: str, port: int) -> None:
    settings = get_settings()
    configure_logging("api")
    configure_tracing("api")
    # uvicorn handles SIGTERM/SIGINT itself (stop accepting, finish requests, run the
    # lifespan shutdown) and then re-raises the signal to the handler installed before it:
    # this one, so a graceful stop ends with exit status 0 rather than death by signal.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    app = create_app(settings)
    configure_garbage_collector()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,  # keep the JSON log handler configure_logging installed
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        proxy_headers=False,
        http=ShapedHttpToolsProtocol,
    )
    sys.exit(0)
