"""The delivery-destinations routes: the shared door routes and this door's rotate-secret,
with its grace window."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from services.api.auth import Org
from services.api.delivery_destinations import schemas, service
from services.api.delivery_destinations.schemas import DestinationSecretRotated, RotateSecretIn
from services.api.endpoints.routes import add_door_routes
from services.api.routing import ApiRoute
from services.api.state import State

router = APIRouter(
    prefix="/delivery-destinations", tags=["delivery destinations"], route_class=ApiRoute
)
add_door_routes(router, service.DOOR, schemas.MODELS, id_param="destination_id")


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
