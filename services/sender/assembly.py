"""A sender's working parts, put together once: the `hookpost sender` process and the
dispatcher's own first attempts (services/dispatcher/first_attempts.py) run the same ones.

Each holds a database pool of its caller's, an endpoint cache with its LISTEN connection,
an SSRF-safe HTTP client and the retry publisher on its caller's broker.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiohttp.abc import AbstractResolver
from faststream.rabbit import RabbitBroker

from libs.infra.broker.topology import Topology
from libs.infra.settings import Settings
from libs.infra.url_safety import SafetyPolicy
from libs.worker.runtime import wait_for_database
from services.sender.consumer import DeliverySender
from services.sender.dead_letters import DeadLetterHandler
from services.sender.http_client import HttpClient
from services.sender.repository import SenderRepository
from services.sender.retries import BrokerRetryPublisher


@dataclass(frozen=True)
class SenderParts:
    repository: SenderRepository
    http: HttpClient
    sender: DeliverySender
    dead_letters: DeadLetterHandler

    async def close(self) -> None:
        await self.repository.close()
        await self.http.close()


async def open_sender(
    settings: Settings,
    pool: asyncpg.Pool,
    broker: RabbitBroker,
    topology: Topology,
    *,
    max_connections: int,
    resolver: AbstractResolver | None = None,
) -> SenderParts:
    """`max_connections`: the most POSTs open at once; `resolver` replaces aiohttp's name
    lookup (the address checks stay)."""
    repository = SenderRepository(pool, listen_dsn=settings.database_url)
    repository.endpoints.start()
    http = await HttpClient(
        SafetyPolicy.from_settings(settings.is_dev, settings.allowed_private_cidrs),
        timeout_s=settings.send_timeout_s,
        max_connections=max_connections,
        propagate_trace=settings.propagate_trace_to_endpoints,
        resolver=resolver,
    ).start()
    sender = DeliverySender(
        repository,
        http,
        BrokerRetryPublisher(broker, topology),
        retry_delay_scale=settings.retry_delay_scale,
        db_backoff=lambda: wait_for_database(pool),
        sink_payload_cap_bytes=settings.sink_payload_cap_bytes,
    )
    return SenderParts(repository, http, sender, DeadLetterHandler(repository))
