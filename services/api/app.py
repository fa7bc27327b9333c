"""The FastAPI application: routes, error shapes, and the lifespan that owns connections."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.infra.broker.topology import Topology
from libs.infra.db.pool import create_pool
from libs.infra.settings import Settings, get_settings
from services.api import health
from services.api.admin.router import router as admin_router
from services.api.agents.router import router as agents_router
from services.api.audit.router import router as audit_router
from services.api.broker import BrokerLink
from services.api.dashboard import router as dashboard
from services.api.deliveries.router import router as deliveries_router
from services.api.delivery_destinations.router import router as destinations_router
from services.api.errors import install_error_handlers
from services.api.event_types.router import router as event_types_router
from services.api.events import batch, ingest
from services.api.events.outbox import OutboxRelay
from services.api.events.router import router as events_router
from services.api.export_webhooks.router import router as export_webhooks_router
from services.api.exports.router import router as exports_router
from services.api.mapping_jobs.router import router as mapping_jobs_router
from services.api.metrics import HTTP_RESPONSES
from services.api.organizations.router import router as organization_router
from services.api.portal_links.router import admin_router as portal_links_admin_router
from services.api.portal_links.router import router as portal_links_router
from services.api.reports.router import router as reports_router
from services.api.state import ApiState
from services.api.webhook_subscriptions.router import router as subscriptions_router

log = logging.getLogger("hookpost.api")

API_PREFIX = "/api/v1"
# Probes and scrapes would be most of the api's spans and tell nothing.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


class ResponseCounter:
    """Counts every HTTP response by status class, as pure ASGI.

    Not a `BaseHTTPMiddleware`, which runs the rest of the app in a second task and pipes
    the body through a memory stream on every request: here only the `http.response.start`
    message is looked at on its way out.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._by_class: dict[int, Counter] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._counter(message["status"] // 100).inc()
            await send(message)

        await self.app(scope, receive, counting_send)

    def _counter(self, status_class: int) -> Counter:
        counter = self._by_class.get(status_class)
        if counter is None:  # labels() takes a lock and builds a key: once per class
            counter = self._by_class[status_class] = HTTP_RESPONSES.labels(
                status_class=f"{status_class}xx"
            )
        return counter


def _api_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)
    for domain in (
        subscriptions_router,
        destinations_router,
        export_webhooks_router,
        mapping_jobs_router,
        exports_router,
        organization_router,
        events_router,
        event_types_router,
        deliveries_router,
        audit_router,
        agents_router,
        reports_router,
        portal_links_router,
    ):
        router.include_router(domain)
    router.include_router(admin_router)
    router.include_router(portal_links_admin_router)
    return router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        topology = Topology.of(settings)
        # No reset query on release (one round trip per pool call): the api leaves no
        # session state on a connection. Nothing in services/api runs SET, LISTEN, a session
        # advisory lock (its one lock, pg_advisory_xact_lock, ends with its transaction),
        # DECLARE/cursors or temporary tables, and asyncpg still rolls back a transaction
        # left open. tests/api/test_request_path.py fails if such SQL appears.
        pool = await create_pool(settings.database_url, reset_session=False)
        # The broker connects in the background: the API serves (and fills the outbox)
        # while RabbitMQ is away; /readyz says so.
        broker = BrokerLink(settings.amqp_url, topology)
        broker.start()
        await broker.wait_first_attempt()
        relay = OutboxRelay(
            pool,
            broker,
            topology,
            interval_s=settings.outbox_relay_interval_s,
            grace_s=settings.outbox_relay_grace_s,
        )
        relay.start()
        state = ApiState(settings=settings, pool=pool, broker=broker, topology=topology)
        app.state.api = state
        try:
            yield
        finally:
            await relay.stop()
            # After the last request: its published marks are written before the pool goes.
            await state.outbox.close()
            await broker.stop()
            await pool.close()

    app = FastAPI(
        title="hookpost",
        version="0.1.0",
        description="Signed, retried, logged webhook delivery.",
        lifespan=lifespan,
        docs_url="/docs",
        # FastAPI's built-in OpenTelemetry: one SERVER span per request (continuing a
        # caller's traceparent) on the provider libs/infra/telemetry.py installs; no
        # per-dependency spans, so the event's publish is a direct child of the request.
        # Metrics are Prometheus (/metrics) and logs are JSON lines, not OpenTelemetry: with
        # "metrics" and "logs" on, FastAPI looks up the unconfigured global meter and logger
        # providers on every request (an os.environ lookup each).
        telemetry={
            "operation_spans": False,
            "exclude": _untraced,
            "metrics": False,
            "logs": False,
        },
    )
    install_error_handlers(app)
    # First, so that the hot path is matched at once (events/ingest.py says why it is a plain
    # Starlette route); its OpenAPI operation is declared from its models.
    app.router.routes.append(ingest.ROUTE)
    app.router.routes.append(batch.ROUTE)
    app.include_router(health.router)
    app.include_router(_api_router())
    dashboard.install(app)  # /app: the web dashboard
    app.add_middleware(ResponseCounter)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            ingest.add_to_openapi(schema)
            batch.add_to_openapi(schema)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
    return app
