"""Bearer-token authentication: an org API token for the API, the admin token for /admin.

The checks run twice over, cheaply: `request_guard.RequestGuard` authenticates every route
that depends on `current_org` / `require_admin` BEFORE the body is read (so a request with
no valid token is a 401 even when its body is malformed or huge) and leaves the org in the
request state, where the dependency below picks it up instead of querying again.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from services.api.errors import UnauthorizedError
from services.api.organizations.tokens import CurrentOrg, TokenCache
from services.api.state import State

# auto_error=False: a missing header must answer our 401 shape, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="An organization API token (hpk_…)")
_admin_bearer = HTTPBearer(
    auto_error=False, scheme_name="AdminToken", description="HOOKPOST_ADMIN_TOKEN"
)
# Where RequestGuard leaves the authenticated org (Starlette's request.state is scope["state"]).
ORG_STATE_KEY = "hookpost_org"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header, as HTTPBearer reads it."""
    scheme, token = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not token:
        return None
    return token


async def authenticate_org(tokens: TokenCache, token: str | None) -> CurrentOrg:
    if not token:
        raise UnauthorizedError("missing bearer token")
    org = await tokens.organization(token)
    if org is None:
        raise UnauthorizedError("invalid bearer token")
    return org


def authenticate_admin(expected: str | None, token: str | None) -> None:
    # With no admin token configured the admin routes are closed, never open.
    if not expected or not token:
        raise UnauthorizedError("missing or invalid admin token")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise UnauthorizedError("missing or invalid admin token")


async def current_org(
    request: Request,
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> CurrentOrg:
    authenticated = getattr(request.state, ORG_STATE_KEY, None)
    if isinstance(authenticated, CurrentOrg):
        return authenticated
    return await authenticate_org(state.tokens, credentials.credentials if credentials else None)


async def require_admin(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> None:
    authenticate_admin(state.settings.admin_token, credentials.credentials if credentials else None)


Org = Annotated[CurrentOrg, Depends(current_org)]
Admin = Depends(require_admin)
