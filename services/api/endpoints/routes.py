"""The routes every webhook front door serves alike, written once.

`add_door_routes` gives a door POST and GET on its collection, GET, PUT and DELETE on one
endpoint and, when the door has a /test (`WebhookDoor.test_data`), GET …/deliveries and
POST …/test. A door's own routes (its rotate-secret, say) stay in its router. What differs
between doors is data: its WebhookDoor, its wire models and the name of its id in the path.
Route names come from the door's kind (create_subscription, list_destinations,
get_export_webhook, …): the OpenAPI makes its operation ids and summaries of them.
"""

# No `from __future__ import annotations`: FastAPI reads the annotations of the route
# functions below, which name this door's models through `models`, when each is added.

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from services.api.auth import Org
from services.api.deliveries.recovery import recover_endpoint
from services.api.deliveries.schemas import (
    AttemptOut,
    DeliveryList,
    DeliveryOut,
    RecoverAccepted,
    RecoverIn,
)
from services.api.endpoints.door import WebhookDoor
from services.api.endpoints.schemas import DoorModels, EndpointOut, TestQueued
from services.api.endpoints.service import NOUNS
from services.api.endpoints.test_limits import TestSendLimit
from services.api.limits import DEFAULT_LIMIT, clamp_limit
from services.api.schemas import ApiModel
from services.api.state import State


def add_door_routes(
    router: APIRouter, door: WebhookDoor, models: DoorModels, id_param: str
) -> None:
    """`id_param`: the endpoint id's name in the path (subscription_id, webhook_id, …)."""
    _add_crud_routes(router, door, models, id_param)
    if door.test_data is not None:
        _add_history_routes(router, door, door.test_data, id_param)


def _endpoint_id(id_param: str) -> Any:
    """The type of a route's endpoint id: a path parameter named as the door names it."""
    return Annotated[str, Path(alias=id_param)]


def _add_crud_routes(
    router: APIRouter, door: WebhookDoor, models: DoorModels, id_param: str
) -> None:
    noun = NOUNS[door.kind]
    what = noun.replace("_", " ")
    EndpointId = _endpoint_id(id_param)
    one = "/{" + id_param + "}"

    @router.post(
        "",
        status_code=status.HTTP_201_CREATED,
        response_model=models.created,
        name=f"create_{noun}",
        description=f"Create {'an' if what[0] in 'aeiou' else 'a'} {what};"
        " `signingSecret` is in this response only.",
    )
    async def create(body: models.body, state: State, org: Org) -> EndpointOut:
        created = await door.create(state.pool, state.settings, org.id, org.plan, body)
        secret = created.signing_secret
        return models.created.from_endpoint(created.endpoint, door.spell, signing_secret=secret)

    @router.get(
        "",
        response_model=models.listing,
        name=f"list_{noun}s",
        description=f'The org\'s {what}s, oldest first: `{{"{models.list_key}": [...]}}`,'
        " secrets masked (`activeOnly=true`: the ACTIVE ones only).",
    )
    async def list_all(
        state: State, org: Org, active_only: Annotated[bool, Query(alias="activeOnly")] = False
    ) -> ApiModel:
        found = await door.list_all(state.pool, org.id, active_only)
        shown = [models.out.from_endpoint(e, door.spell) for e in found]
        return models.listing(**{models.list_key: shown})

    @router.get(one, response_model=models.out, name=f"get_{noun}")
    async def get(endpoint_id: EndpointId, state: State, org: Org) -> EndpointOut:
        endpoint = await door.get(state.pool, org.id, endpoint_id)
        return models.out.from_endpoint(endpoint, door.spell)

    @router.put(
        one,
        response_model=models.out,
        name=f"replace_{noun}",
        description=f"Replace the {what} (same body as create). 403 if the plan lacks one of"
        " its events.",
    )
    async def replace(
        endpoint_id: EndpointId, body: models.body, state: State, org: Org
    ) -> EndpointOut:
        updated = await door.replace(
            state.pool, state.settings, org.id, org.plan, endpoint_id, body
        )
        return models.out.from_endpoint(updated, door.spell)

    @router.post(
        f"{one}/recover",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=RecoverAccepted,
        name=f"recover_{noun}",
        description=f"Re-send this {what}'s PARKED, FAILED and DEAD deliveries created since"
        ' `since`, each once, with its original eventId → `{"deliveries": N}`. 409 while the'
        f" {what} is INACTIVE: re-activate it first.",
    )
    async def recover(
        endpoint_id: EndpointId, body: RecoverIn, state: State, org: Org
    ) -> RecoverAccepted:
        count = await recover_endpoint(state, org.id, endpoint_id, body.since, kind=door.kind)
        return RecoverAccepted(deliveries=count)

    @router.delete(
        one,
        status_code=status.HTTP_204_NO_CONTENT,
        name=f"delete_{noun}",
        description=f"Delete the {what} and its delivery history.",
    )
    async def delete(endpoint_id: EndpointId, state: State, org: Org) -> Response:
        await door.delete(state.pool, org.id, endpoint_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)


def _add_history_routes(
    router: APIRouter,
    door: WebhookDoor,
    test_data: Callable[[str], dict[str, Any]],
    id_param: str,
) -> None:
    what = NOUNS[door.kind].replace("_", " ")
    EndpointId = _endpoint_id(id_param)
    one = "/{" + id_param + "}"

    @router.get(f"{one}/deliveries", response_model=DeliveryList)
    async def list_deliveries(
        endpoint_id: EndpointId,
        state: State,
        org: Org,
        limit: Annotated[int, Query()] = DEFAULT_LIMIT,
    ) -> DeliveryList:
        """Recent deliveries, newest first, each with its attempts: `{"deliveries": [...]}`.

        `limit` defaults to 50; values above 200 are capped at 200, values below 1 are a 400.
        """
        found = await door.recent_deliveries(state.pool, org.id, endpoint_id, clamp_limit(limit))
        return DeliveryList(
            deliveries=[
                DeliveryOut(
                    **dict(delivery),
                    attempts=[AttemptOut.model_validate(dict(a)) for a in attempts],
                )
                for delivery, attempts in found
            ]
        )

    @router.post(
        f"{one}/test",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=TestQueued,
        dependencies=[TestSendLimit],
        description=f"Queue a synthetic `webhook.test` delivery to this {what}"
        ' → `{"deliveryId"}`.',
    )
    async def send_test(endpoint_id: EndpointId, state: State, org: Org) -> TestQueued:
        data = test_data(endpoint_id)
        delivery_id = await door.send_test(state.pool, state.outbox, org.id, endpoint_id, data)
        return TestQueued(delivery_id=delivery_id)
