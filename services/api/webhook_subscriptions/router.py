"""The webhook-subscriptions routes: the shared door routes and this door's rotate-secret."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.auth import Org
from services.api.endpoints.routes import add_door_routes
from services.api.routing import ApiRoute
from services.api.state import State
from services.api.webhook_subscriptions import schemas, service
from services.api.webhook_subscriptions.schemas import SecretRotated

router = APIRouter(
    prefix="/webhook-subscriptions", tags=["webhook subscriptions"], route_class=ApiRoute
)
add_door_routes(router, service.DOOR, schemas.MODELS, id_param="subscription_id")


@router.post("/{subscription_id}/rotate-secret", response_model=SecretRotated)
async def rotate_secret(subscription_id: str, state: State, org: Org) -> SecretRotated:
    """A new signing secret, shown once; the old one stops verifying at once."""
    secret = await service.rotate_secret(state.pool, org.id, subscription_id)
    return SecretRotated(id=subscription_id, signing_secret=secret)
