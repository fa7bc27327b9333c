"""The engine's working parts, put together once for whichever service runs it.

Each engine holds a database pool of its caller's, an endpoint cache with its LISTEN
connection, an SSRF-safe HTTP client and the retry publisher on its caller's broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from aiohttp.abc import AbstractResolver
from faststream.rabbit import RabbitBroker

from libs.delivery.engine import DeliveryEngine
from libs.delivery.http_client import HttpClient
from libs.delivery.limits import EndpointLimits
from libs.delivery.metrics import EngineMetrics
from libs.delivery.ordering import LineReleases
from libs.delivery.publisher import StepPublisher
from libs.delivery.repository import DeliveryRepository
from libs.domain.endpoint_health import HealthPolicy
from libs.infra.broker.topology import Topology
from libs.infra.settings import Settings
from libs.infra.url_safety import SafetyPolicy
from libs.worker.membership import Membership
from libs.worker.runtime import wait_for_database


@dataclass(frozen=True)
class RunningEngine:
    engine: DeliveryEngine
    repository: DeliveryRepository
    http: HttpClient
    membership: Membership

    async def close(self) -> None:
        """Finish every collected load and record, then close the connections."""
        await self.repository.close()
        await self.http.close()
        await self.membership.stop()


async def open_engine(
    settings: Settings,
    pool: asyncpg.Pool,
    broker: RabbitBroker,
    topology: Topology,
    *,
    service: str,
    max_connections: int,
    resolver: AbstractResolver | None = None,
) -> RunningEngine:
    """`service` labels the metrics; `max_connections`: the most POSTs open at once;
    `resolver` replaces aiohttp's name lookup (the address checks stay)."""
    metrics = EngineMetrics(service)
    membership = Membership(pool, service)
    await membership.start()
    repository = DeliveryRepository(pool, listen_dsn=settings.database_url)
    repository.endpoints.start()
    http = await HttpClient(
        SafetyPolicy.from_settings(settings.is_dev, settings.allowed_private_cidrs),
        timeout_s=settings.send_timeout_s,
        max_connections=max_connections,
        propagate_trace=settings.propagate_trace_to_endpoints,
        resolver=resolver,
        retry_after_cap_s=settings.retry_after_cap_s,
    ).start()
    engine = DeliveryEngine(
        repository,
        http,
        StepPublisher(broker, topology, metrics),
        metrics,
        EndpointLimits(
            settings.endpoint_max_concurrency,
            share=membership.share,
        ),
        retry_delay_scale=settings.retry_delay_scale,
        db_backoff=lambda: wait_for_database(pool),
        sink_payload_cap_bytes=settings.sink_payload_cap_bytes,
        health=HealthPolicy(
            timedelta(seconds=settings.endpoint_failing_after_s),
            settings.endpoint_failing_min_dead,
        ),
        redrive_after_s=settings.redrive_deliveries_after_s,
        lines=LineReleases(pool, settings.payload_cap_bytes),
    )
    return RunningEngine(engine, repository, http, membership)
