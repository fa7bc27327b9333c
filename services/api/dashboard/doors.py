"""The front doors the dashboard has pages for, and how a page's form becomes the door's
own request body (validated by the door's own model, as the API validates it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel, ValidationError

from libs.domain.endpoint_kinds import EndpointKind, EndpointStatus
from libs.domain.event_types import CATALOGUE, EventType
from libs.domain.ordering import is_ordered
from libs.domain.plans import Plan
from services.api.delivery_destinations import service as destinations
from services.api.delivery_destinations.schemas import DEFAULT_GRACE_PERIOD_S, DestinationIn
from services.api.endpoints.door import WebhookDoor
from services.api.endpoints.service import Endpoint, StoredSettings
from services.api.errors import BadRequestError
from services.api.event_types.router import EventTypeOut, catalogue
from services.api.export_webhooks import service as export_webhooks
from services.api.export_webhooks.schemas import ExportWebhookIn
from services.api.schemas import ApiModel
from services.api.webhook_subscriptions import service as subscriptions
from services.api.webhook_subscriptions.schemas import SubscriptionIn

M = TypeVar("M", bound=BaseModel)
# (pool, org id, endpoint id, grace seconds) → (new secret, until when the old one signs)
Rotate = Callable[[asyncpg.Pool, str, str, int], Awaitable[tuple[str, datetime | None]]]


async def _rotate_destination(
    pool: asyncpg.Pool, org_id: str, endpoint_id: str, grace_s: int
) -> tuple[str, datetime | None]:
    rotated = await destinations.rotate_secret(pool, org_id, endpoint_id, grace_s)
    return rotated.secret, rotated.previous_secret_expires_at


async def _rotate_subscription(
    pool: asyncpg.Pool, org_id: str, endpoint_id: str, grace_s: int
) -> tuple[str, datetime | None]:
    del grace_s  # seed 002: the old secret stops at once on this door
    return await subscriptions.rotate_secret(pool, org_id, endpoint_id), None


def validated(model: type[M], raw: dict[str, Any]) -> M:
    """`raw` as the door's own model reads it; its first complaint as the API's 400."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "form"
        raise BadRequestError(f"{where}: {first.get('msg', 'invalid')}") from exc


def rate_limit(form: dict[str, Any], current: Endpoint | None) -> object:
    """The form's rate limit field (empty clears it); without the field, the current one."""
    if "rate_limit" in form:
        return (form.get("rate_limit") or "").strip() or None
    return current.rate_limit_per_second if current is not None else None


def ordered(form: dict[str, Any], current: Endpoint | None) -> bool:
    """The orderedDelivery box: its form sends a hidden "off" before the box's "on" (the last
    one counts), so a form without the field at all (pause, activate) keeps the current one."""
    if "ordered_delivery" in form:
        return form.get("ordered_delivery") == "on"
    return current is not None and is_ordered(current.config)


@dataclass(frozen=True)
class DoorPage:
    slug: str  # /app/<slug>
    title: str
    singular: str
    door: WebhookDoor
    model: type[ApiModel]
    rotate: Rotate | None
    default_grace_s: int | None  # None: no grace window on this door
    picks_events: bool  # export webhooks always get export.ready

    @property
    def orders(self) -> bool:
        """Its form has the orderedDelivery box (the doors whose body has the field)."""
        return "ordered_delivery" in self.model.model_fields

    def body(
        self, form: dict[str, Any], current: Endpoint | None, stored: StoredSettings | None
    ) -> ApiModel:
        """The door's request body from a form; what the form leaves out is kept from
        `current` (an edit replaces the whole endpoint, as PUT does)."""
        url = (form.get("url") or "").strip() or (stored.url if stored else "")
        status = form.get("status") or (current.status.value if current else "ACTIVE")
        raw: dict[str, Any] = {"rateLimitPerSecond": rate_limit(form, current)}
        if self.picks_events:
            events = form.get("events") or []
            raw |= {
                "name": (form.get("name") or "").strip() or None,
                "webhookUrl": url,
                "events": [self.spell(name) for name in events],
                "status": status,
                "signatureScheme": form.get("signature_scheme")
                or (current.signature_scheme if current else "v1"),
            }
            if current is not None:  # kept as they are: the page shows them masked only
                raw["apiKeyName"] = current.api_key_name
                raw["apiKeyValue"] = stored.api_key_value if stored else None
                raw["additionalHeaders"] = current.additional_headers
            if self.orders:
                raw["orderedDelivery"] = ordered(form, current)
            if self.slug == "destinations":
                raw["type"] = "WEBHOOK"
        else:
            raw |= {"url": url, "active": status == EndpointStatus.ACTIVE.value}
        return validated(self.model, raw)

    def spell(self, wire_name: str) -> str:
        try:
            return self.door.spell(EventType(wire_name))
        except ValueError:
            return wire_name  # the door refuses it with its own message


PAGES: dict[str, DoorPage] = {
    page.slug: page
    for page in (
        DoorPage(
            "destinations",
            "Delivery destinations",
            "destination",
            destinations.DOOR,
            DestinationIn,
            _rotate_destination,
            DEFAULT_GRACE_PERIOD_S,
            picks_events=True,
        ),
        DoorPage(
            "webhooks",
            "Webhooks",
            "webhook",
            subscriptions.DOOR,
            SubscriptionIn,
            _rotate_subscription,
            None,
            picks_events=True,
        ),
        DoorPage(
            "export-webhooks",
            "Export webhooks",
            "export webhook",
            export_webhooks.DOOR,
            ExportWebhookIn,
            None,
            None,
            picks_events=False,
        ),
    )
}


@dataclass(frozen=True)
class EventChoice:
    """One box of the events picker, from the /api/v1/event-types catalogue."""

    info: EventTypeOut
    allowed: bool  # by the org's plan; a gated one is shown, disabled, with its plan

    @property
    def id(self) -> str:
        return "ev-" + self.info.type.replace(".", "-")


def event_choices(plan: Plan) -> list[EventChoice]:
    return [
        EventChoice(info, plan in info.plans)
        for info in catalogue()
        if CATALOGUE[EventType(info.type)].subscribable
    ]


# Where an endpoint of each kind has its page (kinds without one link to the log only).
ENDPOINT_PAGES: dict[str, str] = {page.door.kind: page.slug for page in PAGES.values()}
ENDPOINT_PAGES[EndpointKind.AGENT_SINK] = "agents/sinks"
# The log's endpoint picker: every kind with a page, under that page's title.
PICKER_GROUPS: dict[EndpointKind, str] = {page.door.kind: page.title for page in PAGES.values()}
PICKER_GROUPS[EndpointKind.AGENT_SINK] = "Agent sinks"
