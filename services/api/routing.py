"""The route class of every API router: authenticate, then read the body within its limit.

FastAPI reads and parses a request body before it resolves the route's dependencies, so a
plain route answers a malformed body with 400 before it looks at the token, and reads a
body of any size into memory first. `ApiRoute` puts two steps in front of that:

1. a route that depends on `current_org` or `require_admin` checks the token first: no
   valid token → 401 with the body unread (the org is left in the request state, where
   the `current_org` dependency picks it up instead of querying again);
2. the body is read here, within the route's limit: a Content-Length above it is refused
   unread, and a chunked body is counted as it arrives and refused as soon as it passes
   the limit (413), so an oversized body is never held in memory whole. FastAPI's handler
   then gets the body already read.

The limit is `HOOKPOST_MAX_BODY_BYTES`, or the one a route declares where it is defined:

    @router.post("/{job_id}/complete", dependencies=[max_body(10 * MiB)])

3. a body that is a JSON object is read as JSON whatever Content-Type it declares: seed 003's
   curl sends its JSON with `-d` alone, which curl declares as form data. Anything else is
   parsed (and refused) as it declares itself, exactly as before.

(Not FastAPI's own `max_body_size`: Starlette's limiter behind it replaces any answer to an
oversized Content-Length, ours included, with a plain-text 413 outside the SPEC §4 shape.)
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from fastapi import Depends, Request, Response, params
from fastapi.dependencies.models import Dependant
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute

from services.api.auth import (
    ORG_STATE_KEY,
    authenticate_admin,
    authenticate_org,
    bearer_token,
    current_org,
    require_admin,
)
from services.api.errors import PayloadTooLargeError
from services.api.organizations.tokens import CurrentOrg
from services.api.state import ApiState

MiB = 1024 * 1024


class Auth(Enum):
    NONE = "none"
    ORG = "org"
    ADMIN = "admin"


@dataclass(frozen=True)
class BodyLimit:
    """A no-op dependency whose only job is to carry its route's body limit."""

    max_bytes: int

    async def __call__(self) -> None:
        return None


def max_body(max_bytes: int) -> DependsParam:
    return Depends(BodyLimit(max_bytes))


def route_body_limit(dependant: Dependant) -> int | None:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, BodyLimit):
            return dependency.call.max_bytes
    return None


def _depends_on(dependant: Dependant, call: object) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


def route_auth(dependant: Dependant) -> Auth:
    if _depends_on(dependant, require_admin):
        return Auth.ADMIN
    if _depends_on(dependant, current_org):
        return Auth.ORG
    return Auth.NONE


async def authenticate(request: Request, auth: Auth, state: ApiState) -> CurrentOrg | None:
    """Raise 401 unless the request carries the token `auth` asks for; return the org (ORG)."""
    token = bearer_token(request.headers.get("authorization"))
    if auth is Auth.ADMIN:
        authenticate_admin(state.settings.admin_token, token)
    elif auth is Auth.ORG:
        org = await authenticate_org(state.tokens, token)
        setattr(request.state, ORG_STATE_KEY, org)
        return org
    return None


async def read_body_within(request: Request, max_bytes: int) -> None:
    """Read the body into the request, or raise 413 as soon as it is known to be too big."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(max_bytes)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLargeError(max_bytes)
        chunks.append(chunk)
    # Starlette's Request.body() returns `_body` when set: FastAPI parses what was read here.
    request._body = b"".join(chunks)


async def guard(
    request: Request, auth: Auth, route_limit: int | None, state: ApiState
) -> CurrentOrg | None:
    """Steps 1 and 2 above: the token first (401, body unread), then the body within its
    limit (413). Also the first steps of the ingest route (events/ingest.py), which is not
    a FastAPI route."""
    org = await authenticate(request, auth, state)
    await read_body_within(request, route_limit or state.settings.max_body_bytes)
    return org


_JSON_TYPE = re.compile(r"^\s*application/([\w.+-]*\+)?json\s*(;|$)", re.IGNORECASE)


def read_json_whatever_declared(request: Request) -> None:
    """Step 3: declare a JSON-object body as JSON (FastAPI parses only what says it is)."""
    body: bytes = request._body
    if not body.lstrip()[:1] == b"{":
        return
    if _JSON_TYPE.match(request.headers.get("content-type", "")):
        return
    headers = [(k, v) for k, v in request.scope["headers"] if k.lower() != b"content-type"]
    request.scope["headers"] = [*headers, (b"content-type", b"application/json")]
    if hasattr(request, "_headers"):
        del request._headers  # Starlette caches the headers it read first


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()
        auth = route_auth(self.dependant)
        route_limit = route_body_limit(self.dependant)
        takes_json = bool(self.dependant.body_params) and not any(
            isinstance(p.field_info, params.Form) for p in self.dependant.body_params
        )

        async def guarded(request: Request) -> Response:
            await guard(request, auth, route_limit, request.app.state.api)
            if takes_json:
                read_json_whatever_declared(request)
            return await handler(request)

        return guarded
