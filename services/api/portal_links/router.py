"""POST /portal-links (the org) and POST /admin/organizations/{id}/portal-links (an admin)
mint a portal link; DELETE /portal-links/{id} revokes one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response, status

from services.api.auth import Admin, Org
from services.api.portal_links import service
from services.api.portal_links.schemas import PortalLinkIn, PortalLinkOut
from services.api.routing import ApiRoute
from services.api.state import ApiState, State

router = APIRouter(prefix="/portal-links", tags=["portal links"], route_class=ApiRoute)
admin_router = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[Admin], route_class=ApiRoute
)


async def _mint(state: ApiState, org_id: str, body: PortalLinkIn, by: str) -> PortalLinkOut:
    link = await service.mint(
        state.pool,
        org_id,
        body.expires_in_seconds,
        state.settings.portal_link_max_ttl_s,
        body.frame_origin,
        created_by=by,
    )
    return PortalLinkOut(
        id=link.id,
        organization_id=org_id,
        url=state.settings.public_base_url.rstrip("/") + link.path,
        frame_origin=link.frame_origin,
        expires_at=link.expires_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PortalLinkOut)
async def create_portal_link(
    state: State, org: Org, body: Annotated[PortalLinkIn | None, Body()] = None
) -> PortalLinkOut:
    """A link that opens this org's dashboard without its API token, until `expiresAt`."""
    return await _mint(state, org.id, body or PortalLinkIn(), "organization")


@router.delete("/{link_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_portal_link(link_id: str, state: State, org: Org) -> Response:
    """Revoke the link: it opens nothing more and the sessions it opened end."""
    await service.revoke(state.pool, org.id, link_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@admin_router.post(
    "/organizations/{organization_id}/portal-links",
    status_code=status.HTTP_201_CREATED,
    response_model=PortalLinkOut,
)
async def admin_create_portal_link(
    organization_id: str, state: State, body: Annotated[PortalLinkIn | None, Body()] = None
) -> PortalLinkOut:
    """A portal link for any org (HOOKPOST_ADMIN_TOKEN)."""
    return await _mint(state, organization_id, body or PortalLinkIn(), "admin")
