from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from services.api.auth import Org
from services.api.export_webhooks import service
from services.api.export_webhooks.schemas import (
    ExportWebhookCreated,
    ExportWebhookIn,
    ExportWebhookList,
    ExportWebhookOut,
)
from services.api.routing import ApiRoute
from services.api.state import State

router = APIRouter(prefix="/export-webhooks", tags=["export webhooks"], route_class=ApiRoute)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ExportWebhookCreated)
async def create_export_webhook(
    body: ExportWebhookIn, state: State, org: Org
) -> ExportWebhookCreated:
    """Register a URL for `export.ready`; `signingSecret` is in this response only."""
    created = await service.create(state.pool, state.settings, org.id, org.plan, body)
    return ExportWebhookCreated.from_created(created.endpoint, created.signing_secret)


@router.get("", response_model=ExportWebhookList)
async def list_export_webhooks(
    state: State, org: Org, active_only: Annotated[bool, Query(alias="activeOnly")] = False
) -> ExportWebhookList:
    """The org's export webhooks, oldest first (`activeOnly=true`: enabled ones only)."""
    found = await service.list_all(state.pool, org.id, active_only)
    return ExportWebhookList(webhooks=[ExportWebhookOut.from_endpoint(e) for e in found])


@router.get("/{webhook_id}", response_model=ExportWebhookOut)
async def get_export_webhook(webhook_id: str, state: State, org: Org) -> ExportWebhookOut:
    return ExportWebhookOut.from_endpoint(await service.get(state.pool, org.id, webhook_id))


@router.put("/{webhook_id}", response_model=ExportWebhookOut)
async def replace_export_webhook(
    webhook_id: str, body: ExportWebhookIn, state: State, org: Org
) -> ExportWebhookOut:
    """Change the URL or switch the webhook on or off (`active`)."""
    updated = await service.replace(state.pool, state.settings, org.id, org.plan, webhook_id, body)
    return ExportWebhookOut.from_endpoint(updated)


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_export_webhook(webhook_id: str, state: State, org: Org) -> Response:
    """Delete the webhook and its delivery history."""
    await service.delete(state.pool, org.id, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
