"""`POST /api/v1/events`, the api's hot path: the one implementation, a plain Starlette route
registered ahead of FastAPI's.

Why not a FastAPI route: most of the api's CPU per ingest request went to FastAPI's
machinery around a small handler: matching ~80 routes, solving dependencies, request and
response models (BENCHMARKS.md). Registered first, this route is matched at once and runs
what a FastAPI route of the api runs, through the same functions: the guard (token, then
the body within its limit: routing.guard), the rate limit, `service.ingest`. Its errors
are raised as FastAPI raises them, for the app's handlers to shape (errors.py); its OpenAPI
operation is declared from the same pydantic models (`add_to_openapi`).

A body is read as JSON whatever Content-Type it declares (a plain `curl -d` sends none, or
form encoding); what is not a JSON object is refused.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from fastapi.telemetry import get_telemetry_data
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.api.events import service
from services.api.events.rate_limit import within_ingest_rate
from services.api.events.schemas import EventAccepted, EventIn
from services.api.routing import Auth, guard
from services.api.state import ApiState

M = TypeVar("M", bound=BaseModel)

PATH = "/api/v1/events"
SUMMARY = "Ingest Event"
DESCRIPTION = """Accept an event for delivery to every matching endpoint → 202 `{"eventId"}`.

The event is stored before the answer and published with broker confirms (an outbox
relay publishes it later if the broker is away). With `Idempotency-Key`, repeating the
same request returns the same `eventId`; reusing the key with another body is a 409.
Each organization may send `HOOKPOST_EVENTS_RATE_PER_S` events per second (bursts of
`HOOKPOST_EVENTS_RATE_BURST`); beyond that the answer is 429 with `Retry-After`."""


async def ingest_event(request: Request) -> Response:
    state: ApiState = request.app.state.api
    # The events route declares no body limit of its own: the settings' one applies.
    org = await guard(request, Auth.ORG, None, state)
    assert org is not None
    # As for a FastAPI route: a body that is not JSON is refused before the rate limit is
    # asked, a JSON body of the wrong shape after it (and spends a token).
    parsed = parse_json(await request.body())  # read by guard, within the limit
    telemetry_data = get_telemetry_data()
    if telemetry_data is not None:  # what FastAPI records for OpenTelemetry processors
        telemetry_data.request, telemetry_data.body = request, parsed
    await within_ingest_rate(state, org)
    event = parse_event(parsed)
    event_id = await service.ingest(
        state.outbox,
        org.id,
        event.type,
        event.data,
        request.headers.get("idempotency-key"),
        event.ordering_key,
    )
    # As FastAPI serializes a response_model: pydantic's JSON, by alias.
    return Response(
        EventAccepted(event_id=event_id).model_dump_json(by_alias=True),
        status_code=202,
        media_type="application/json",
    )


ROUTE = Route(PATH, ingest_event, methods=["POST"], include_in_schema=False)


_MISSING = object()


def parse_json(body: bytes) -> Any:
    """The body's JSON (`_MISSING` when empty), or the error FastAPI raises for it."""
    if not body:
        return _MISSING
    try:
        # json, not orjson: what FastAPI parses with (NaN, big integers, UTF-16, a BOM…).
        parsed = json.loads(body)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ],
            body=exc.doc,
        ) from exc
    except Exception as exc:  # not UTF-8, nested too deep
        raise HTTPException(400, "There was an error parsing the body") from exc
    return parsed


def parse_event(parsed: Any) -> EventIn:
    """The JSON body as an EventIn, or the error FastAPI raises for a body parameter."""
    return parse_model(parsed, EventIn)


def parse_model(parsed: Any, model: type[M], loc: tuple[str | int, ...] = ("body",)) -> M:
    """`parsed` (found at `loc`) as a `model`, or the error FastAPI raises for a body."""
    if parsed is _MISSING:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        # from_attributes, as FastAPI validates a body (its errors read the same)
        return model.model_validate(parsed, from_attributes=True)
    except ValidationError as exc:
        errors = [{**error, "loc": (*loc, *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors, body=parsed) from exc


def add_to_openapi(schema: dict[str, Any]) -> None:
    """Declare the operation in the app's OpenAPI document, from the models it uses."""
    declare_operation(
        schema,
        PATH,
        EventIn,
        EventAccepted,
        {
            "summary": SUMMARY,
            "description": DESCRIPTION,
            "operationId": "ingest_event_api_v1_events_post",
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                }
            ],
        },
        accepted=("202", "Accepted"),
        errors=(
            ("400", "Bad request"),
            ("401", "Unauthorized"),
            ("409", "Idempotency-Key reused with another body"),
            ("413", "Body too large"),
            ("429", "Rate limited"),
        ),
    )


def declare_operation(
    schema: dict[str, Any],
    path: str,
    body: type[BaseModel],
    answer: type[BaseModel],
    operation: dict[str, Any],
    *,
    accepted: tuple[str, str],
    errors: tuple[tuple[str, str], ...],
) -> None:
    """A POST of the events tag, taking `body` and answering `answer`, in the document."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (body, answer):
        model_schema = model.model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}"
        )
        components.update(model_schema.pop("$defs", {}))
        components[model.__name__] = model_schema
    status, text = accepted
    schema["paths"].setdefault(path, {})["post"] = {
        "tags": ["events"],
        **operation,
        "security": [{"HTTPBearer": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{body.__name__}"}}
            },
        },
        "responses": {
            status: {
                "description": text,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{answer.__name__}"}
                    }
                },
            },
            **{
                code: {"description": f"{what}: the error body of every route"}
                for code, what in errors
            },
        },
    }
