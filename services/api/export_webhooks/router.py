"""The export-webhooks routes: the shared door routes (this door has no /test, no history
and no rotate-secret of its own)."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.endpoints.routes import add_door_routes
from services.api.export_webhooks import schemas, service
from services.api.routing import ApiRoute

router = APIRouter(prefix="/export-webhooks", tags=["export webhooks"], route_class=ApiRoute)
add_door_routes(router, service.DOOR, schemas.MODELS, id_param="webhook_id")
