"""Delivery destinations (seed 001): a thin door onto the endpoints domain.

What is this door's own: ids `dest_…`, kind DESTINATION, `type: WEBHOOK`, event types
spelled as wire names (mapping.completed), and a rotate-secret with a grace window during
which the sender signs with both secrets. Quota, plan gates, URL safety, secrets and the
delivery pipeline are the endpoints domain's, shared with every other door.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import asyncpg

from libs.common.broker.topology import Topology
from libs.common.endpoint_kinds import EndpointKind
from libs.common.event_payloads import WebhookTestData
from libs.common.event_types import CATALOGUE, EventType
from libs.common.ids import IdPrefix, new_id
from libs.common.plans import Plan
from libs.common.settings import Settings
from services.api.broker import BrokerLink
from services.api.deliveries import service as deliveries
from services.api.delivery_destinations.schemas import DestinationIn
from services.api.endpoints import service as endpoints
from services.api.endpoints.service import (
    Endpoint,
    EndpointSpec,
    EndpointWithSecret,
    RotatedSecret,
)
from services.api.errors import BadRequestError, ForbiddenError
from services.api.events import service as events

KIND = EndpointKind.DESTINATION
TEST_MESSAGE = "This is a test webhook from hookpost"

T = TypeVar("T")


def _event_types(names: list[str]) -> list[EventType]:
    unknown = []
    types = []
    for name in names:
        try:
            types.append(EventType(name))
        except ValueError:
            unknown.append(name)
    if unknown:
        known = ", ".join(t.value for t in EventType if CATALOGUE[t].subscribable)
        raise BadRequestError(
            f"unknown event type(s): {', '.join(map(repr, unknown))} (known: {known})"
        )
    return types


def _spec(body: DestinationIn) -> EndpointSpec:
    return EndpointSpec(
        url=body.webhook_url,
        events=_event_types(body.events),
        name=body.name,
        status=body.status,
        api_key_name=body.api_key_name,
        api_key_value=body.api_key_value,
        additional_headers=body.additional_headers,
        signature_scheme=body.signature_scheme.value,
    )


async def _gated(call: Awaitable[T]) -> T:
    """Name plan-gated events the way this door spells them (dotted)."""
    try:
        return await call
    except endpoints.EventsNotAllowed as exc:
        names = [t.value for t in exc.events]
        raise ForbiddenError(
            f"your plan does not include {', '.join(names)}: upgrade to subscribe",
            events=names,
        ) from exc


async def create(
    pool: asyncpg.Pool, settings: Settings, org_id: str, plan: Plan, body: DestinationIn
) -> EndpointWithSecret:
    spec = _spec(body)
    return await _gated(
        endpoints.create_endpoint(pool, settings, org_id, plan, KIND, IdPrefix.DESTINATION, spec)
    )


async def replace(
    pool: asyncpg.Pool,
    settings: Settings,
    org_id: str,
    plan: Plan,
    destination_id: str,
    body: DestinationIn,
) -> Endpoint:
    # An unknown id is a 404 before anything about the body is judged.
    await endpoints.get_endpoint(pool, org_id, KIND, destination_id)
    spec = _spec(body)
    return await _gated(
        endpoints.replace_endpoint(pool, settings, org_id, plan, KIND, destination_id, spec)
    )


async def get(pool: asyncpg.Pool, org_id: str, destination_id: str) -> Endpoint:
    return await endpoints.get_endpoint(pool, org_id, KIND, destination_id)


async def list_all(pool: asyncpg.Pool, org_id: str, active_only: bool) -> list[Endpoint]:
    return await endpoints.list_endpoints(pool, org_id, KIND, active_only)


async def delete(pool: asyncpg.Pool, org_id: str, destination_id: str) -> None:
    await endpoints.delete_endpoint(pool, org_id, KIND, destination_id)


async def rotate_secret(
    pool: asyncpg.Pool, org_id: str, destination_id: str, grace_s: int
) -> RotatedSecret:
    # Seed 001: the old secret keeps working through a grace window (≈5 minutes by default).
    return await endpoints.rotate_secret_with_grace(pool, org_id, KIND, destination_id, grace_s)


async def recent_deliveries(
    pool: asyncpg.Pool, org_id: str, destination_id: str, limit: int
) -> list[tuple[asyncpg.Record, list[asyncpg.Record]]]:
    await endpoints.get_endpoint(pool, org_id, KIND, destination_id)
    return await deliveries.list_for_endpoint(pool, org_id, destination_id, limit)


async def send_test(
    pool: asyncpg.Pool,
    broker: BrokerLink,
    topology: Topology,
    org_id: str,
    destination_id: str,
) -> str:
    """Queue a webhook.test event aimed at this destination only; return its delivery id."""
    await endpoints.get_endpoint(pool, org_id, KIND, destination_id)
    delivery_id = new_id(IdPrefix.DELIVERY)
    data = WebhookTestData(message=TEST_MESSAGE, destination_id=destination_id)
    await events.record_and_publish(
        pool,
        broker,
        topology,
        org_id,
        EventType.WEBHOOK_TEST,
        data.model_dump(mode="json", by_alias=True, exclude_none=True),
        target_endpoint_id=destination_id,
        target_delivery_id=delivery_id,
    )
    return delivery_id
