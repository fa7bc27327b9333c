from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status

from services.api.auth import Org
from services.api.deliveries.schemas import AttemptOut, DeliveryList, DeliveryOut
from services.api.delivery_destinations import service
from services.api.delivery_destinations.schemas import (
    DestinationCreated,
    DestinationIn,
    DestinationList,
    DestinationOut,
    DestinationSecretRotated,
    RotateSecretIn,
)
from services.api.limits import DEFAULT_LIMIT, clamp_limit
from services.api.routing import ApiRoute
from services.api.state import State
from services.api.webhook_subscriptions.schemas import TestQueued

router = APIRouter(
    prefix="/delivery-destinations", tags=["delivery destinations"], route_class=ApiRoute
)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DestinationCreated)
async def create_destination(body: DestinationIn, state: State, org: Org) -> DestinationCreated:
    """Create a destination; `signingSecret` is in this response only."""
    created = await service.create(state.pool, state.settings, org.id, org.plan, body)
    return DestinationCreated.from_created(created.endpoint, created.signing_secret)


@router.get("", response_model=DestinationList)
async def list_destinations(
    state: State, org: Org, active_only: Annotated[bool, Query(alias="activeOnly")] = False
) -> DestinationList:
    """The org's destinations, oldest first: `{"destinations": [...]}` (secrets masked)."""
    found = await service.list_all(state.pool, org.id, active_only)
    return DestinationList(destinations=[DestinationOut.from_endpoint(e) for e in found])


@router.get("/{destination_id}", response_model=DestinationOut)
async def get_destination(destination_id: str, state: State, org: Org) -> DestinationOut:
    return DestinationOut.from_endpoint(await service.get(state.pool, org.id, destination_id))


@router.put("/{destination_id}", response_model=DestinationOut)
async def replace_destination(
    destination_id: str, body: DestinationIn, state: State, org: Org
) -> DestinationOut:
    """Replace the destination (same body as create). 403 if the plan lacks an event."""
    updated = await service.replace(
        state.pool, state.settings, org.id, org.plan, destination_id, body
    )
    return DestinationOut.from_endpoint(updated)


@router.delete("/{destination_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_destination(destination_id: str, state: State, org: Org) -> Response:
    """Delete the destination and its delivery history."""
    await service.delete(state.pool, org.id, destination_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{destination_id}/rotate-secret", response_model=DestinationSecretRotated)
async def rotate_secret(
    destination_id: str,
    state: State,
    org: Org,
    body: Annotated[RotateSecretIn | None, Body()] = None,
) -> DestinationSecretRotated:
    """A new signing secret, shown once. The old one keeps signing for `gracePeriodSeconds`
    (default 300, 0..86400): until `previousSecretExpiresAt` every delivery carries both
    signatures. The body is optional."""
    grace_s = (body or RotateSecretIn()).grace_period_seconds
    rotated = await service.rotate_secret(state.pool, org.id, destination_id, grace_s)
    return DestinationSecretRotated(
        id=destination_id,
        signing_secret=rotated.secret,
        previous_secret_expires_at=rotated.previous_secret_expires_at,
    )


@router.get("/{destination_id}/deliveries", response_model=DeliveryList)
async def list_deliveries(
    destination_id: str,
    state: State,
    org: Org,
    limit: Annotated[int, Query()] = DEFAULT_LIMIT,
) -> DeliveryList:
    """Recent deliveries, newest first, each with its attempts: `{"deliveries": [...]}`.

    `limit` defaults to 50; values above 200 are capped at 200, values below 1 are a 400.
    """
    found = await service.recent_deliveries(state.pool, org.id, destination_id, clamp_limit(limit))
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
    "/{destination_id}/test", status_code=status.HTTP_202_ACCEPTED, response_model=TestQueued
)
async def send_test(destination_id: str, state: State, org: Org) -> TestQueued:
    """Queue a synthetic `webhook.test` delivery to this destination → `{"deliveryId"}`."""
    delivery_id = await service.send_test(state.pool, state.outbox, org.id, destination_id)
    return TestQueued(delivery_id=delivery_id)
