"""Fixtures for the API tests: the app in-process (lifespan included) on the real servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest

from libs.domain.plans import Plan
from libs.infra.broker.topology import Topology
from libs.infra.settings import Settings, get_settings
from services.api.app import create_app
from services.api.events import repository

UNREACHABLE_AMQP_URL = "amqp://guest:guest@127.0.0.1:1/"


def admin_url(org_id: str, tail: str = "") -> str:
    """An operator's route on one organization (`tail`: "/plan", "/portal-links", …)."""
    return f"/api/v1/admin/organizations/{org_id}{tail}"


@dataclass
class Client:
    """An httpx client on the in-process app, plus the org whose token it sends."""

    http: httpx.AsyncClient
    org_id: str
    token: str

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.http.get(url, headers=self._headers(kw.pop("headers", None)), **kw)

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.http.post(url, headers=self._headers(kw.pop("headers", None)), **kw)

    async def put(self, url: str, **kw: Any) -> httpx.Response:
        return await self.http.put(url, headers=self._headers(kw.pop("headers", None)), **kw)

    async def delete(self, url: str, **kw: Any) -> httpx.Response:
        return await self.http.delete(url, headers=self._headers(kw.pop("headers", None)), **kw)


@asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running (pool, broker link, outbox relay)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
            yield http


@pytest.fixture
def settings(db_pool: asyncpg.Pool) -> Settings:
    # db_pool migrated the test database and reset the settings cache to the test env.
    return get_settings()


@pytest.fixture
def admin_auth(settings: Settings) -> dict[str, str]:
    """The operator's credentials (HOOKPOST_ADMIN_TOKEN)."""
    assert settings.admin_token
    return {"Authorization": f"Bearer {settings.admin_token}"}


@pytest.fixture
def topology(settings: Settings) -> Topology:
    return Topology(settings.broker_prefix, settings.retry_delay_scale)


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(settings) as client:
        yield client


MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def make_client(http: httpx.AsyncClient, make_org: Callable) -> MakeClient:
    async def make(plan: Plan = Plan.FREE) -> Client:
        org = await make_org(plan)
        return Client(http=http, org_id=org.organizationId, token=org.apiToken)

    return make


@pytest.fixture
async def max_client(make_client: MakeClient) -> Client:
    """A client of a PRO_MAX organization (agents, sinks)."""
    return await make_client(Plan.PRO_MAX)


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client(Plan.FREE)


@pytest.fixture
async def pro_client(make_client: MakeClient) -> Client:
    return await make_client(Plan.PRO)


@pytest.fixture
async def amqp(settings: Settings) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        yield await connection.channel()


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.1
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def subscription_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Inventory ops",
        "webhookUrl": "https://localhost/webhooks/mapping",
        "events": ["MAPPING_COMPLETED"],
    }
    body.update(overrides)
    return body


async def fill_subscription_quota(client: Client, settings: Settings) -> None:
    """Give the org as many ACTIVE subscriptions as its quota allows."""
    for n in range(settings.active_endpoint_quota):
        body = subscription_body(webhookUrl=f"http://127.0.0.1:9/s{n}")
        assert (await client.post("/api/v1/webhook-subscriptions", json=body)).status_code == 201


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


async def insert_delivery(
    pool: asyncpg.Pool,
    org_id: str,
    endpoint_id: str,
    *,
    status: str = "DEAD",
    attempt_count: int = 4,
    event_type: str = "mapping.completed",
    data: dict[str, Any] | None = None,
    attempts: list[tuple[int | None, str | None, bool]] = (),  # type: ignore[assignment]
) -> tuple[str, str]:
    """A delivery as the pipeline would leave it (event row included); returns (event, delivery).

    `attempts` lists (http_status, error, succeeded) rows to record for it.
    """
    from libs.domain.ids import IdPrefix, new_id

    event_id, delivery_id = new_id(IdPrefix.EVENT), new_id(IdPrefix.DELIVERY)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO events (id, organization_id, type, data, published_at)"
            " VALUES ($1, $2, $3, $4, now())",
            event_id,
            org_id,
            event_type,
            data if data is not None else {"mappingJobId": "job_1"},
        )
        await conn.execute(
            "INSERT INTO deliveries (id, event_id, endpoint_id, organization_id, status,"
            " attempt_count, last_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, now())",
            delivery_id,
            event_id,
            endpoint_id,
            org_id,
            status,
            attempt_count,
        )
        for number, (http_status, error, succeeded) in enumerate(attempts, start=1):
            await conn.execute(
                "INSERT INTO delivery_attempts (id, delivery_id, event_id, attempt_number,"
                " attempted_at, duration_ms, http_status, error, succeeded)"
                " VALUES ($1, $2, $7, $3, now(), 12, $4, $5, $6)",
                new_id(IdPrefix.DELIVERY),
                delivery_id,
                number,
                http_status,
                error,
                succeeded,
                event_id,
            )
    return event_id, delivery_id


@pytest.fixture
async def prod_client(settings: Settings, make_org: Callable) -> AsyncIterator[Client]:
    """An org's client on the api run with HOOKPOST_ENV=prod (public https URLs only)."""
    prod = settings.model_copy(update={"env": "prod"})
    org = await make_org()
    async with running_api(prod) as http:
        yield Client(http=http, org_id=org.organizationId, token=org.apiToken)


@pytest.fixture
def insert_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every INSERT the api sends (the statement itself still runs)."""
    sizes: list[int] = []
    real = repository.EventInserts._insert_many

    async def counting(self: repository.EventInserts, events: list[Any]) -> list[Any]:
        sizes.append(len(events))
        return await real(self, events)

    monkeypatch.setattr(repository.EventInserts, "_insert_many", counting)
    return sizes
