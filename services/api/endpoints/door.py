"""A webhook front door: the CRUD flow every door shares, parameterised by what is its own.

Doors differ in their endpoint kind, their id prefix, how they spell event types
(`MAPPING_COMPLETED` on subscriptions, `mapping.completed` elsewhere) and what their request
body holds (`spec`); quota, plan gates, URL safety, secrets and the delivery pipeline are
the endpoints domain's. Their routes are written once too: services/api/endpoints/routes.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.event_types import CATALOGUE, EventType
from libs.domain.ids import IdPrefix, new_id
from libs.domain.ordering import ORDERED_DELIVERY
from libs.domain.plans import Plan
from libs.infra.settings import Settings
from services.api.deliveries import service as deliveries
from services.api.endpoints import service as endpoints
from services.api.endpoints.schemas import WebhookEndpointIn
from services.api.endpoints.service import Endpoint, EndpointSpec, EndpointWithSecret
from services.api.errors import BadRequestError, ForbiddenError
from services.api.events import service as events

T = TypeVar("T")
TEST_MESSAGE = "This is a test webhook from hookpost"


def dotted(event_type: EventType) -> str:
    return event_type.value


@dataclass(frozen=True)
class WebhookDoor:
    kind: EndpointKind
    id_prefix: IdPrefix
    spell: Callable[[EventType], str] = dotted  # how this door names an event type
    parse: Callable[[str], EventType] = EventType  # a ValueError for a name it does not know
    # The data of the webhook.test event its POST …/test queues for an endpoint id (a door
    # without one has neither that route nor …/deliveries).
    test_data: Callable[[str], dict[str, Any]] | None = None

    def event_types(self, names: list[str]) -> list[EventType]:
        types, unknown = [], []
        for name in names:
            try:
                types.append(self.parse(name))
            except ValueError:
                unknown.append(name)
        if unknown:
            known = ", ".join(self.spell(t) for t in EventType if CATALOGUE[t].subscribable)
            raise BadRequestError(
                f"unknown event type(s): {', '.join(map(repr, unknown))} (known: {known})"
            )
        return types

    def spec(self, body: WebhookEndpointIn) -> EndpointSpec:
        """The endpoint a request body asks for (a door with another body overrides this)."""
        return EndpointSpec(
            url=body.webhook_url,
            events=self.event_types(body.events),
            name=body.name,
            status=body.status,
            api_key_name=body.api_key_name,
            api_key_value=body.api_key_value,
            additional_headers=body.additional_headers,
            signature_scheme=body.signature_scheme.value,
            rate_limit_per_second=body.rate_limit_per_second,
            config={ORDERED_DELIVERY: True} if body.ordered_delivery else {},
        )

    async def _gated(self, call: Awaitable[T]) -> T:
        """Name plan-gated events the way this door spells them."""
        try:
            return await call
        except endpoints.EventsNotAllowed as exc:
            names = [self.spell(t) for t in exc.events]
            raise ForbiddenError(
                f"your plan does not include {', '.join(names)}: upgrade to subscribe",
                events=names,
            ) from exc

    async def create(
        self, pool: asyncpg.Pool, settings: Settings, org_id: str, plan: Plan, body: Any
    ) -> EndpointWithSecret:
        spec = self.spec(body)
        return await self._gated(
            endpoints.create_endpoint(pool, settings, org_id, plan, self.kind, self.id_prefix, spec)
        )

    async def replace(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        org_id: str,
        plan: Plan,
        endpoint_id: str,
        body: Any,
    ) -> Endpoint:
        # An unknown id is a 404 before anything about the body is judged.
        await self.get(pool, org_id, endpoint_id)
        spec = self.spec(await self.completed(pool, org_id, endpoint_id, body))
        return await self._gated(
            endpoints.replace_endpoint(pool, settings, org_id, plan, self.kind, endpoint_id, spec)
        )

    async def completed(self, pool: asyncpg.Pool, org_id: str, endpoint_id: str, body: Any) -> Any:
        """What a PUT's body means: as sent, unless the door lets a PUT leave fields out."""
        return body

    async def get(self, pool: asyncpg.Pool, org_id: str, endpoint_id: str) -> Endpoint:
        return await endpoints.get_endpoint(pool, org_id, self.kind, endpoint_id)

    async def list_all(self, pool: asyncpg.Pool, org_id: str, active_only: bool) -> list[Endpoint]:
        return await endpoints.list_endpoints(pool, org_id, self.kind, active_only)

    async def delete(self, pool: asyncpg.Pool, org_id: str, endpoint_id: str) -> None:
        await endpoints.delete_endpoint(pool, org_id, self.kind, endpoint_id)

    async def recent_deliveries(
        self, pool: asyncpg.Pool, org_id: str, endpoint_id: str, limit: int
    ) -> list[tuple[asyncpg.Record, list[asyncpg.Record]]]:
        await self.get(pool, org_id, endpoint_id)
        return await deliveries.list_for_endpoint(pool, org_id, endpoint_id, limit)

    async def send_test(
        self,
        pool: asyncpg.Pool,
        outbox: events.EventOutbox,
        org_id: str,
        endpoint_id: str,
        data: dict[str, Any],
    ) -> str:
        """Queue a webhook.test event aimed at this endpoint only; return its delivery id.

        The delivery id is chosen here so the caller can look it up before the dispatcher ran.
        """
        await self.get(pool, org_id, endpoint_id)
        delivery_id = new_id(IdPrefix.DELIVERY)
        event = events.check_event(
            org_id,
            EventType.WEBHOOK_TEST,
            data,
            target_endpoint_id=endpoint_id,
            target_delivery_id=delivery_id,
        )
        await events.record_and_publish(outbox, event)
        return delivery_id
