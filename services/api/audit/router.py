from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.api.audit import service
from services.api.audit.schemas import AuditEntryOut, AuditLogOut
from services.api.auth import Org
from services.api.limits import clamp_limit
from services.api.routing import ApiRoute
from services.api.state import State

router = APIRouter(prefix="/audit-log", tags=["audit log"], route_class=ApiRoute)


@router.get("", response_model=AuditLogOut)
async def list_audit_log(
    state: State, org: Org, limit: Annotated[int, Query()] = 50
) -> AuditLogOut:
    """The organization's audit entries, newest first: `{"entries": [...]}`.

    `limit` defaults to 50; values above 200 are capped at 200, values below 1 are a 400.
    """
    rows = await service.list_entries(state.pool, org.id, clamp_limit(limit))
    return AuditLogOut(entries=[AuditEntryOut.model_validate(dict(row)) for row in rows])
