"""`POST /api/v1/events/batch`: up to MAX_BATCH_EVENTS events in one request, each answered
on its own.

A plain route beside the single one (events/ingest.py), through the same functions: the
guard (token, then the body within BATCH_MAX_BODY_BYTES), then, per item, the ingest rate
limit (one token per event), the EventIn model, the type and the storable checks
(`service.check_event`). What fails for the request as a whole is answered as the single
route answers it: 401, 413, a body that is not JSON or not `{"events": [1 to 500 items]}`
(400). Otherwise the answer is 200 with one result per item, in order: 202 and its eventId,
or the status and error body the single route would have answered for that event alone.
The accepted events share one INSERT and one confirmed publish (one message carrying all
of them, which the dispatcher reads item by item: libs/infra/broker/messages.py).
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.api.errors import ApiError, validation_error_body
from services.api.events import service
from services.api.events.ingest import declare_operation, parse_json, parse_model
from services.api.events.rate_limit import within_ingest_rate
from services.api.events.schemas import (
    BatchAccepted,
    BatchEnvelope,
    BatchEventIn,
    BatchIn,
    BatchItemResult,
)
from services.api.organizations.tokens import CurrentOrg
from services.api.routing import Auth, MiB, guard
from services.api.state import ApiState

PATH = "/api/v1/events/batch"
# Room for 500 events of about 20 KB each; a bigger event goes through POST /events alone.
BATCH_MAX_BODY_BYTES = 10 * MiB
DESCRIPTION = """Accept up to 500 events in one request → 200 with one result per item.

Each item is the body of `POST /api/v1/events` plus its own optional `idempotencyKey`, and
is checked, rate limited (one token per event) and answered as that route would answer it
alone: `{"index", "status": 202, "eventId"}`, or `{"index", "status", "error"}` with the
error body of every route. One bad item never fails the others. The accepted events are
stored together and published with one confirm. The request itself fails only as a whole:
401 (token), 413 (body over 10 MiB), 400 (not JSON, or not 1 to 500 `events`)."""


async def ingest_batch(request: Request) -> Response:
    state: ApiState = request.app.state.api
    org = await guard(request, Auth.ORG, BATCH_MAX_BODY_BYTES, state)
    assert org is not None
    envelope = parse_model(parse_json(await request.body()), BatchEnvelope)
    results: list[BatchItemResult | None] = [None] * len(envelope.events)
    checked: list[tuple[int, service.CheckedEvent]] = []
    for index, item in enumerate(envelope.events):
        try:
            checked.append((index, await _checked(state, org, index, item)))
        except ApiError as exc:
            results[index] = _failed(index, exc.status_code, exc.body())
        except RequestValidationError as exc:
            results[index] = _failed(index, 400, validation_error_body(exc))
    outcomes = await service.record_and_publish_many(state.outbox, [e for _, e in checked])
    for (index, _), outcome in zip(checked, outcomes, strict=True):
        if isinstance(outcome, ApiError):
            results[index] = _failed(index, outcome.status_code, outcome.body())
        else:
            results[index] = BatchItemResult(index=index, status=202, event_id=outcome)
    answered = [result for result in results if result is not None]
    accepted = sum(1 for result in answered if result.status == 202)
    body = BatchAccepted(accepted=accepted, failed=len(answered) - accepted, results=answered)
    return Response(
        body.model_dump_json(by_alias=True, exclude_none=True),
        status_code=200,
        media_type="application/json",
    )


def _failed(index: int, status: int, body: dict[str, Any]) -> BatchItemResult:
    # The item carries the route's error body's `error` object: {"index", "status", "error"}.
    return BatchItemResult(index=index, status=status, error=body["error"])


async def _checked(state: ApiState, org: CurrentOrg, index: int, item: Any) -> service.CheckedEvent:
    """One item through the single route's checks, in its order: the rate limit first."""
    await within_ingest_rate(state, org)
    event = parse_model(item, BatchEventIn, ("body", "events", index))
    return service.check_event(
        org.id,
        service.parse_ingest_type(event.type),
        event.data,
        idempotency_key=event.idempotency_key,
        ordering_key=event.ordering_key,
    )


ROUTE = Route(PATH, ingest_batch, methods=["POST"], include_in_schema=False)


def add_to_openapi(schema: dict[str, Any]) -> None:
    declare_operation(
        schema,
        PATH,
        BatchIn,
        BatchAccepted,
        {
            "summary": "Ingest Events In A Batch",
            "description": DESCRIPTION,
            "operationId": "ingest_batch_api_v1_events_batch_post",
        },
        accepted=("200", "Every item answered (see each result's status)"),
        errors=(
            ("400", "Not JSON, or not 1 to 500 events"),
            ("401", "Unauthorized"),
            ("413", "Body too large"),
        ),
    )
