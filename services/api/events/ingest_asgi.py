"""`POST /api/v1/events` served as plain ASGI, in front of FastAPI's router.

Why: ingest is the api's hot path, and py-spy (make bench) put ~2.5 ms of api CPU on each
request of which only ~28 % was the handler itself (token cache, body, batched INSERT,
publish with confirm). The rest was FastAPI/Starlette machinery: matching ~80 routes
(`_IncludedRouter._match`, ~18 %), dependency solving, request and response model handling.
This middleware answers the request itself with the same functions the route calls.

What it must stay equal to: the FastAPI route `events/router.py::ingest_event` with its
`ApiRoute` guard, answer for answer (status, body, headers), and with the same side effects
(rate-limit tokens, Prometheus counters, the SERVER span and its name, log context). It
keeps that by calling the same code rather than restating it:

- `routing.guard`: the token before the body (401), then the body within its limit (413);
- `events.rate_limit.within_ingest_rate`, then `service.ingest` (type check, outbox, publish);
- errors are rendered by the app's own exception handlers (errors.install_error_handlers):
  this runs inside a copy of the `ExceptionMiddleware` FastAPI built from them, so an
  unexpected error still reaches the outer ServerErrorMiddleware (500) as it would;
- it sits inside FastAPI's telemetry (the SERVER span, continuing a caller's `traceparent`)
  and inside `ResponseCounter`, and names the span after the route as FastAPI's router does.

Whatever it would have to re-implement to stay equal, it hands to FastAPI instead:
a Content-Type other than plain JSON (FastAPI's content-type rules, before anything is read),
and a body that is not valid JSON or not an `EventIn` (FastAPI's error details; the body
read here is replayed, and FastAPI takes the rate-limit token before it refuses the body,
as it always does). Tests: tests/api/test_ingest_asgi.py compares both paths.
"""

from __future__ import annotations

import copy
import json

from fastapi.telemetry import get_telemetry_data

# Private, but the only way to name the span "POST /api/v1/events" as the router does.
from fastapi.telemetry._api import _route_selected
from starlette.datastructures import Headers
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.events import service
from services.api.events.rate_limit import within_ingest_rate
from services.api.events.schemas import EventAccepted, EventIn
from services.api.routing import Auth, guard
from services.api.state import ApiState

# What FastAPI reads as JSON, spelled as clients send it; any other spelling goes to FastAPI.
JSON_CONTENT_TYPES = frozenset({"application/json", "application/json; charset=utf-8"})


class EventIngestASGI:
    """Middleware: `POST <path>` here, everything else to the next app (FastAPI's router).

    Added in app.py as the innermost user middleware, so `app` is the ExceptionMiddleware
    FastAPI builds from the app's exception handlers.
    """

    def __init__(self, app: ASGIApp, path: str) -> None:
        if not isinstance(app, ExceptionMiddleware):
            raise TypeError("EventIngestASGI must be the innermost middleware (see app.py)")
        self.app = app
        self.path = path
        # The same handlers, the same lookup (by exception class, then status code).
        self._handled = copy.copy(app)
        self._handled.app = self._ingest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == self.path
            and scope["method"] == "POST"
            and not scope.get("root_path")  # mounted under a prefix: let the router match
            and Headers(scope=scope).get("content-type", "").lower() in JSON_CONTENT_TYPES
        ):
            await self._handled(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _ingest(self, scope: Scope, receive: Receive, send: Send) -> None:
        _route_selected(scope=scope, path=self.path)
        request = Request(scope, receive, send)
        state: ApiState = scope["app"].state.api
        # The events route declares no body limit of its own: the settings' one applies.
        org = await guard(request, Auth.ORG, None, state)
        assert org is not None
        body_bytes = await request.body()  # read by guard, within the limit
        try:
            # json, not orjson: what FastAPI parses with (NaN, big integers, UTF-16…).
            parsed = json.loads(body_bytes)
            body = EventIn.model_validate(parsed)
        except Exception:  # not JSON, not UTF-8, nested too deep, not an EventIn
            await self.app(scope, _replaying(body_bytes, receive), send)
            return
        telemetry_data = get_telemetry_data()
        if telemetry_data is not None:  # what FastAPI records for OpenTelemetry processors
            telemetry_data.request = request
            telemetry_data.body = parsed
        await within_ingest_rate(state, org)
        event_id = await service.ingest(
            state.outbox, org.id, body.type, body.data, request.headers.get("idempotency-key")
        )
        # As FastAPI serializes a response_model: pydantic's JSON, by alias.
        response = Response(
            EventAccepted(event_id=event_id).model_dump_json(by_alias=True),
            status_code=202,
            media_type="application/json",
        )
        await response(scope, receive, send)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read once, then whatever the client sends."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
