"""Bearer-token authentication: an org API token for the API, the admin token for /admin."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from libs.common.plans import Plan
from services.api.errors import UnauthorizedError
from services.api.organizations.service import organization_for_token
from services.api.state import State

# auto_error=False: a missing header must answer our 401 shape, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="An organization API token (hpk_…)")
_admin_bearer = HTTPBearer(
    auto_error=False, scheme_name="AdminToken", description="HOOKPOST_ADMIN_TOKEN"
)


@dataclass(frozen=True)
class CurrentOrg:
    id: str
    plan: Plan


async def current_org(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> CurrentOrg:
    if credentials is None or not credentials.credentials:
        raise UnauthorizedError("missing bearer token")
    row = await organization_for_token(state.pool, credentials.credentials)
    if row is None:
        raise UnauthorizedError("invalid bearer token")
    return CurrentOrg(id=row["id"], plan=Plan(row["plan"]))


async def require_admin(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> None:
    expected = state.settings.admin_token
    # With no admin token configured the admin routes are closed, never open.
    if not expected or credentials is None:
        raise UnauthorizedError("missing or invalid admin token")
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise UnauthorizedError("missing or invalid admin token")


Org = Annotated[CurrentOrg, Depends(current_org)]
Admin = Depends(require_admin)
