from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from services.api.auth import Org
from services.api.deliveries.schemas import AttemptOut, DeliveryList, DeliveryOut
from services.api.limits import DEFAULT_LIMIT, clamp_limit
from services.api.routing import ApiRoute
from services.api.state import State
from services.api.webhook_subscriptions import service
from services.api.webhook_subscriptions.schemas import (
    SecretRotated,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionList,
    SubscriptionOut,
    TestQueued,
)

router = APIRouter(
    prefix="/webhook-subscriptions", tags=["webhook subscriptions"], route_class=ApiRoute
)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SubscriptionCreated)
async def create_subscription(body: SubscriptionIn, state: State, org: Org) -> SubscriptionCreated:
    """Create a subscription; `signingSecret` is in this response only."""
    created = await service.create(state.pool, state.settings, org.id, org.plan, body)
    return SubscriptionCreated.from_created(created.endpoint, created.signing_secret)


@router.get("", response_model=SubscriptionList)
async def list_subscriptions(
    state: State, org: Org, active_only: Annotated[bool, Query(alias="activeOnly")] = False
) -> SubscriptionList:
    """The org's subscriptions, oldest first: `{"subscriptions": [...]}` (secrets masked)."""
    found = await service.list_all(state.pool, org.id, active_only)
    return SubscriptionList(subscriptions=[SubscriptionOut.from_endpoint(e) for e in found])


@router.get("/{subscription_id}", response_model=SubscriptionOut)
async def get_subscription(subscription_id: str, state: State, org: Org) -> SubscriptionOut:
    return SubscriptionOut.from_endpoint(await service.get(state.pool, org.id, subscription_id))


@router.put("/{subscription_id}", response_model=SubscriptionOut)
async def replace_subscription(
    subscription_id: str, body: SubscriptionIn, state: State, org: Org
) -> SubscriptionOut:
    """Replace the subscription (same body as create). 403 if the plan lacks an event."""
    updated = await service.replace(
        state.pool, state.settings, org.id, org.plan, subscription_id, body
    )
    return SubscriptionOut.from_endpoint(updated)


@router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_subscription(subscription_id: str, state: State, org: Org) -> Response:
    """Delete the subscription and its delivery history."""
    await service.delete(state.pool, org.id, subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{subscription_id}/rotate-secret", response_model=SecretRotated)
async def rotate_secret(subscription_id: str, state: State, org: Org) -> SecretRotated:
    """A new signing secret, shown once; the old one stops verifying at once."""
    secret = await service.rotate_secret(state.pool, org.id, subscription_id)
    return SecretRotated(id=subscription_id, signing_secret=secret)


@router.get("/{subscription_id}/deliveries", response_model=DeliveryList)
async def list_deliveries(
    subscription_id: str,
    state: State,
    org: Org,
    limit: Annotated[int, Query()] = DEFAULT_LIMIT,
) -> DeliveryList:
    """Recent deliveries, newest first, each with its attempts: `{"deliveries": [...]}`.

    `limit` defaults to 50; values above 200 are capped at 200, values below 1 are a 400.
    """
    found = await service.recent_deliveries(state.pool, org.id, subscription_id, clamp_limit(limit))
    return DeliveryList(
        deliveries=[
            DeliveryOut(
                **dict(delivery),
                attempts=[AttemptOut.model_validate(dict(a)) for a in attempts],
            )
            for delivery, attempts in found
        ]
    )


@router.post(
    "/{subscription_id}/test", status_code=status.HTTP_202_ACCEPTED, response_model=TestQueued
)
async def send_test(subscription_id: str, state: State, org: Org) -> TestQueued:
    """Queue a synthetic `webhook.test` delivery to this subscription → `{"deliveryId"}`."""
    delivery_id = await service.send_test(state.pool, state.outbox, org.id, subscription_id)
    return TestQueued(delivery_id=delivery_id)
