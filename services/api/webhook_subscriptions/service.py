"""Webhook subscriptions (seed 002): a thin door onto the endpoints domain.

What is this door's own: ids `sub_…`, kind SUBSCRIPTION, event types spelled as enum names
(MAPPING_COMPLETED), the plan-gate 403 naming them, and the synthetic /test event.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import asyncpg

from libs.common.broker.topology import Topology
from libs.common.endpoint_kinds import EndpointKind
from libs.common.event_types import CATALOGUE, EventType, enum_name, from_enum_name
from libs.common.ids import IdPrefix, new_id
from libs.common.plans import Plan
from libs.common.settings import Settings
from services.api.broker import BrokerLink
from services.api.deliveries import service as deliveries
from services.api.endpoints import service as endpoints
from services.api.endpoints.service import Endpoint, EndpointSpec, EndpointWithSecret
from services.api.errors import BadRequestError, ForbiddenError
from services.api.events import service as events
from services.api.webhook_subscriptions.schemas import SubscriptionIn

KIND = EndpointKind.SUBSCRIPTION
TEST_MESSAGE = "This is a test webhook from hookpost"

T = TypeVar("T")


def _event_types(names: list[str]) -> list[EventType]:
    unknown = []
    types = []
    for name in names:
        try:
            types.append(from_enum_name(name))
        except ValueError:
            unknown.append(name)
    if unknown:
        known = ", ".join(enum_name(t) for t in EventType if CATALOGUE[t].subscribable)
        raise BadRequestError(
            f"unknown event type(s): {', '.join(map(repr, unknown))} (known: {known})"
        )
    return types


def _spec(body: SubscriptionIn) -> EndpointSpec:
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
    """Name plan-gated events the way this door spells them."""
    try:
        return await call
    except endpoints.EventsNotAllowed as exc:
        names = [enum_name(t) for t in exc.events]
        raise ForbiddenError(
            f"your plan does not include {', '.join(names)}: upgrade to subscribe",
            events=names,
        ) from exc


async def create(
    pool: asyncpg.Pool, settings: Settings, org_id: str, plan: Plan, body: SubscriptionIn
) -> EndpointWithSecret:
    spec = _spec(body)
    return await _gated(
        endpoints.create_endpoint(pool, settings, org_id, plan, KIND, IdPrefix.SUBSCRIPTION, spec)
    )


async def replace(
    pool: asyncpg.Pool,
    settings: Settings,
    org_id: str,
    plan: Plan,
    subscription_id: str,
    body: SubscriptionIn,
) -> Endpoint:
    # An unknown id is a 404 before anything about the body is judged.
    await endpoints.get_endpoint(pool, org_id, KIND, subscription_id)
    spec = _spec(body)
    return await _gated(
        endpoints.replace_endpoint(pool, settings, org_id, plan, KIND, subscription_id, spec)
    )


async def get(pool: asyncpg.Pool, org_id: str, subscription_id: str) -> Endpoint:
    return await endpoints.get_endpoint(pool, org_id, KIND, subscription_id)


async def list_all(pool: asyncpg.Pool, org_id: str, active_only: bool) -> list[Endpoint]:
    return await endpoints.list_endpoints(pool, org_id, KIND, active_only)


async def delete(pool: asyncpg.Pool, org_id: str, subscription_id: str) -> None:
    await endpoints.delete_endpoint(pool, org_id, KIND, subscription_id)


async def rotate_secret(pool: asyncpg.Pool, org_id: str, subscription_id: str) -> str:
    # Seed 002: the old secret stops working at once (no grace window on this door).
    return await endpoints.rotate_secret(pool, org_id, KIND, subscription_id, grace_s=0)


async def recent_deliveries(
    pool: asyncpg.Pool, org_id: str, subscription_id: str, limit: int
) -> list[tuple[asyncpg.Record, list[asyncpg.Record]]]:
    await endpoints.get_endpoint(pool, org_id, KIND, subscription_id)
    return await deliveries.list_for_endpoint(pool, org_id, subscription_id, limit)


async def send_test(
    pool: asyncpg.Pool,
    broker: BrokerLink,
    topology: Topology,
    org_id: str,
    subscription_id: str,
) -> str:
    """Queue a webhook.test event aimed at this subscription only; return its delivery id.

    The delivery id is chosen here so the caller can look it up before the dispatcher ran.
    """
    await endpoints.get_endpoint(pool, org_id, KIND, subscription_id)
    delivery_id = new_id(IdPrefix.DELIVERY)
    await events.record_and_publish(
        pool,
        broker,
        topology,
        org_id,
        EventType.WEBHOOK_TEST,
        {"message": TEST_MESSAGE, "subscriptionId": subscription_id},
        target_endpoint_id=subscription_id,
        target_delivery_id=delivery_id,
    )
    return delivery_id
