"""The one endpoints domain behind every front door: validation, secrets, quota, plan gates.

Front doors (webhook subscriptions, delivery destinations, export webhooks, agent sinks,
job webhooks) translate their wire format into an EndpointSpec and back from an Endpoint;
everything they share lives here. Event types are EventType values here, never a door's
spelling of them, so plan-gate failures come back as EventsNotAllowed for the door to name.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from libs.domain import plan_gate
from libs.domain.endpoint_health import DeactivatedReason
from libs.domain.endpoint_kinds import (
    RATE_LIMIT_KEY,
    TARGETED_KINDS,
    EndpointKind,
    EndpointStatus,
    rate_limit_of,
)
from libs.domain.event_types import CATALOGUE, EventType
from libs.domain.ids import IdPrefix, new_id
from libs.domain.plans import Plan
from libs.domain.secrets import generate_signing_secret, mask_secret
from libs.infra import crypto
from libs.infra.settings import Settings
from libs.infra.url_safety import SafetyPolicy, UnsafeURLError, check_url
from services.api.audit import service as audit
from services.api.endpoints import repository
from services.api.endpoints.headers import (
    InvalidHeaders,
    check_additional_headers,
    check_api_key,
)
from services.api.endpoints.masking import mask_url
from services.api.errors import BadRequestError, ForbiddenError, NotFoundError
from services.api.records import from_columns

# Doors with a quota of ACTIVE endpoints per org (HOOKPOST_ACTIVE_ENDPOINT_QUOTA, 10), each
# counted on its own: seed 002's "10 active subscriptions" are subscriptions only, and
# destinations have the same allowance of their own. Export webhooks, agent sinks (one
# agent's few) and job webhooks (one per job) have none (docs/front-doors.md, "Quotas").
QUOTA_KINDS = (EndpointKind.SUBSCRIPTION, EndpointKind.DESTINATION)
PLAN_DOWNGRADE = DeactivatedReason.PLAN_DOWNGRADE.value
URL_CHECK_TIMEOUT_S = 5.0

# What each kind is called: in audit actions, in messages and in the doors' operation names.
NOUNS: dict[EndpointKind, str] = {
    EndpointKind.SUBSCRIPTION: "subscription",
    EndpointKind.DESTINATION: "destination",
    EndpointKind.EXPORT_WEBHOOK: "export_webhook",
    EndpointKind.AGENT_SINK: "agent_sink",
    EndpointKind.JOB_WEBHOOK: "job_webhook",
    EndpointKind.REPORT_WEBHOOK: "report_webhook",
}


class EventsNotAllowed(Exception):
    """Some requested event types need a higher plan than the org has."""

    def __init__(self, events: list[EventType]) -> None:
        super().__init__(", ".join(events))
        self.events = events


@dataclass(frozen=True)
class EndpointSpec:
    """What a front door asks for: plaintext in, the service encrypts and masks."""

    url: str
    events: list[EventType]
    name: str | None = None
    status: EndpointStatus = EndpointStatus.ACTIVE
    api_key_name: str | None = None
    api_key_value: str | None = None
    additional_headers: Mapping[str, str] = field(default_factory=dict)
    signature_scheme: str = "v1"
    config: Mapping[str, Any] = field(default_factory=dict)
    # A secret the user chose (agent sinks' auth secret); None: the service generates one.
    secret: str | None = None
    agent_id: str | None = None  # the agent an AGENT_SINK belongs to
    rate_limit_per_second: float | None = None  # None: only its answers limit it


@dataclass(frozen=True)
class Endpoint:
    """A stored endpoint as responses may show it: no plaintext secret in here."""

    id: str
    organization_id: str
    kind: EndpointKind
    name: str | None
    url_masked: str
    events: list[EventType]
    status: EndpointStatus
    deactivated_reason: str | None
    signature_scheme: str
    secret_masked: str | None
    api_key_name: str | None
    api_key_value_masked: str | None
    additional_headers: dict[str, str]
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    agent_id: str | None = None

    @property
    def rate_limit_per_second(self) -> float | None:
        return rate_limit_of(self.config)


@dataclass(frozen=True)
class EndpointWithSecret:
    endpoint: Endpoint
    signing_secret: str  # shown once, on create and rotate


def _from_record(record: asyncpg.Record) -> Endpoint:
    api_key_value = crypto.decrypt_optional(record["api_key_value_enc"])
    return from_columns(
        Endpoint,
        record,
        kind=EndpointKind(record["kind"]),
        events=[EventType(name) for name in record["events"]],
        status=EndpointStatus(record["status"]),
        api_key_value_masked=None if api_key_value is None else mask_secret(api_key_value),
        additional_headers=dict(record["additional_headers"] or {}),
        config=dict(record["config"] or {}),
    )


def not_found(kind: EndpointKind, endpoint_id: str) -> NotFoundError:
    return NotFoundError(f"{NOUNS[kind].replace('_', ' ')} {endpoint_id!r} not found")


def _check_events(plan: Plan, events: list[EventType]) -> list[EventType]:
    unique = list(dict.fromkeys(events))
    if not unique:
        raise BadRequestError("at least one event type is required")
    synthetic = [t for t in unique if not CATALOGUE[t].subscribable]
    if synthetic:
        raise BadRequestError(f"{', '.join(synthetic)} cannot be subscribed to")
    forbidden = plan_gate.forbidden_events(plan, unique)
    if forbidden:
        raise EventsNotAllowed(forbidden)
    return unique


async def _check_url(url: str, settings: Settings) -> None:
    policy = SafetyPolicy.from_settings(settings.is_dev, settings.allowed_private_cidrs)
    try:
        await asyncio.wait_for(check_url(url, policy), URL_CHECK_TIMEOUT_S)
    except UnsafeURLError as exc:
        raise BadRequestError(str(exc)) from exc
    except TimeoutError as exc:
        raise BadRequestError("webhook URL host did not resolve in time") from exc


def _check_kind(kind: EndpointKind, plan: Plan) -> None:
    if not plan_gate.allows_kind(plan, kind):
        minimum = plan_gate.kind_minimum_plan(kind)
        noun = NOUNS[kind].replace("_", " ")
        raise ForbiddenError(f"a {noun} needs the {minimum} plan or above", events=[])


async def _validated_row(
    spec: EndpointSpec,
    plan: Plan,
    settings: Settings,
    deactivated_reason: str | None,
    *,
    targeted: bool = False,
) -> repository.EndpointRow:
    # A targeted endpoint subscribes to nothing: only events naming it reach it.
    events = [] if targeted else _check_events(plan, spec.events)
    try:
        check_api_key(spec.api_key_name, spec.api_key_value)
        check_additional_headers(spec.additional_headers, spec.api_key_name)
    except InvalidHeaders as exc:
        raise BadRequestError(str(exc)) from exc
    await _check_url(spec.url, settings)
    return repository.EndpointRow(
        name=spec.name,
        url_enc=crypto.encrypt(spec.url),
        url_masked=mask_url(spec.url),
        events=[t.value for t in events],
        status=spec.status.value,
        deactivated_reason=deactivated_reason,
        signature_scheme=spec.signature_scheme,
        api_key_name=spec.api_key_name,
        api_key_value_enc=crypto.encrypt_optional(spec.api_key_value),
        additional_headers=dict(spec.additional_headers),
        config=_config(spec),
        agent_id=spec.agent_id,
    )


def _config(spec: EndpointSpec) -> dict[str, Any]:
    """The door's config, with the endpoint's own rate limit when it has one."""
    config = {k: v for k, v in spec.config.items() if k != RATE_LIMIT_KEY}
    if spec.rate_limit_per_second is not None:
        config[RATE_LIMIT_KEY] = spec.rate_limit_per_second
    return config


async def _check_quota(
    conn: asyncpg.Connection,
    org_id: str,
    kind: EndpointKind,
    settings: Settings,
    exclude_id: str | None = None,
) -> None:
    if kind not in QUOTA_KINDS:
        return
    await repository.lock_org_endpoints(conn, org_id)
    active = await repository.count_active(conn, org_id, [kind.value], exclude_id)
    if active >= settings.active_endpoint_quota:
        noun = NOUNS[kind].replace("_", " ")
        raise BadRequestError(
            f"quota exceeded: at most {settings.active_endpoint_quota} ACTIVE {noun}s"
            " per organization (deactivate or delete one first)"
        )


async def create_endpoint(
    pool: asyncpg.Pool,
    settings: Settings,
    org_id: str,
    plan: Plan,
    kind: EndpointKind,
    id_prefix: IdPrefix,
    spec: EndpointSpec,
) -> EndpointWithSecret:
    row = await prepare_row(settings, plan, kind, spec)
    # A door may take the user's own secret (agent sinks); every other endpoint gets ours.
    secret = spec.secret if spec.secret is not None else generate_signing_secret()
    async with pool.acquire() as conn, conn.transaction():
        return await insert_prepared(conn, settings, org_id, kind, id_prefix, row, secret)


async def prepare_row(
    settings: Settings, plan: Plan, kind: EndpointKind, spec: EndpointSpec
) -> repository.EndpointRow:
    """Validate a spec (plan, headers, URL safety with DNS) before any transaction starts."""
    _check_kind(kind, plan)
    return await _validated_row(
        spec, plan, settings, deactivated_reason=None, targeted=kind in TARGETED_KINDS
    )


async def insert_prepared(
    conn: asyncpg.Connection,
    settings: Settings,
    org_id: str,
    kind: EndpointKind,
    id_prefix: IdPrefix,
    row: repository.EndpointRow,
    secret: str | None,
    *,
    mapping_job_id: str | None = None,
) -> EndpointWithSecret:
    """Inside the caller's transaction: quota, the row, its audit entry.

    A `secret` of None stores none: the sender signs such an endpoint with the org's
    webhook secret (job webhooks), and `signing_secret` comes back empty.
    """
    endpoint_id = new_id(id_prefix)
    if row.status == EndpointStatus.ACTIVE.value:
        await _check_quota(conn, org_id, kind, settings)
    record = await repository.insert(
        conn,
        endpoint_id,
        org_id,
        kind.value,
        row,
        crypto.encrypt_optional(secret),
        None if secret is None else mask_secret(secret),
        mapping_job_id=mapping_job_id,
    )
    await audit.record(
        conn,
        org_id,
        f"{NOUNS[kind]}.created",
        {"endpointId": endpoint_id, "name": row.name, "url": row.url_masked},
    )
    return EndpointWithSecret(endpoint=_from_record(record), signing_secret=secret or "")


async def has_active_for_event(
    conn: asyncpg.Connection | asyncpg.Pool, org_id: str, event_type: EventType
) -> bool:
    return await repository.has_active_for_event(conn, org_id, event_type.value)


async def get_endpoint(
    pool: asyncpg.Pool, org_id: str, kind: EndpointKind, endpoint_id: str
) -> Endpoint:
    record = await repository.get(pool, org_id, endpoint_id, kind.value)
    if record is None:
        raise not_found(kind, endpoint_id)
    return _from_record(record)


async def stored_url(pool: asyncpg.Pool, org_id: str, kind: EndpointKind, endpoint_id: str) -> str:
    """The endpoint's URL in plaintext (for a PUT that leaves it as it is)."""
    return (await stored_settings(pool, org_id, kind, endpoint_id)).url


async def list_endpoints(
    pool: asyncpg.Pool, org_id: str, kind: EndpointKind, active_only: bool
) -> list[Endpoint]:
    return [
        _from_record(r)
        for r in await repository.list_for_org(pool, org_id, kind.value, active_only)
    ]


@dataclass(frozen=True)
class StoredSettings:
    url: str
    api_key_value: str | None


async def stored_settings(
    pool: asyncpg.Pool, org_id: str, kind: EndpointKind, endpoint_id: str
) -> StoredSettings:
    """The endpoint's URL and API key value in plaintext, for the dashboard's edit, pause and
    activate: they replace the endpoint as PUT does, keeping what the user leaves as it is
    (the pages themselves only ever show both masked)."""
    row = await repository.stored_settings(pool, org_id, endpoint_id, kind.value)
    if row is None:
        raise not_found(kind, endpoint_id)
    return StoredSettings(
        crypto.decrypt(row["url_enc"]), crypto.decrypt_optional(row["api_key_value_enc"])
    )


async def replace_endpoint(
    pool: asyncpg.Pool,
    settings: Settings,
    org_id: str,
    plan: Plan,
    kind: EndpointKind,
    endpoint_id: str,
    spec: EndpointSpec,
) -> Endpoint:
    # Existence first: another org's id is a 404 even when the body is also wrong.
    await get_endpoint(pool, org_id, kind, endpoint_id)
    _check_kind(kind, plan)
    # Validate (DNS included) before taking any lock.
    row = await _validated_row(spec, plan, settings, deactivated_reason=None)
    async with pool.acquire() as conn, conn.transaction():
        current = await repository.get(conn, org_id, endpoint_id, kind.value, for_update=True)
        if current is None:
            raise not_found(kind, endpoint_id)
        # An endpoint the user leaves INACTIVE keeps the reason it was deactivated for;
        # making it ACTIVE (or deactivating it themselves) clears it.
        if (
            spec.status == EndpointStatus.INACTIVE
            and current["status"] == EndpointStatus.INACTIVE.value
        ):
            row = dataclasses.replace(row, deactivated_reason=current["deactivated_reason"])
        if spec.status == EndpointStatus.ACTIVE:
            await _check_quota(conn, org_id, kind, settings, exclude_id=endpoint_id)
            if current["status"] != EndpointStatus.ACTIVE.value:
                await repository.forget_failures(conn, endpoint_id)
        if spec.secret is not None:
            # A user-chosen secret (agent sinks) is replaced with the rest, at once: first,
            # so the row returned below already shows its mask.
            await install_secret(conn, org_id, kind, endpoint_id, spec.secret, grace_s=0)
        record = await repository.replace(conn, org_id, endpoint_id, kind.value, row)
        assert record is not None  # locked above
        await audit.record(
            conn,
            org_id,
            f"{NOUNS[kind]}.updated",
            {"endpointId": endpoint_id, "status": spec.status.value, "url": row.url_masked},
        )
    return _from_record(record)


async def install_secret(
    conn: asyncpg.Connection,
    org_id: str,
    kind: EndpointKind,
    endpoint_id: str,
    secret: str,
    grace_s: int,
) -> asyncpg.Record | None:
    """Store `secret` encrypted, with its mask; the old one signs `grace_s` seconds more."""
    return await repository.install_secret(
        conn, org_id, endpoint_id, kind.value, crypto.encrypt(secret), mask_secret(secret), grace_s
    )


async def delete_endpoint(
    pool: asyncpg.Pool, org_id: str, kind: EndpointKind, endpoint_id: str
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        if not await repository.delete(conn, org_id, endpoint_id, kind.value):
            raise not_found(kind, endpoint_id)
        await repository.forget_failures(conn, endpoint_id)
        await audit.record(conn, org_id, f"{NOUNS[kind]}.deleted", {"endpointId": endpoint_id})


async def deactivate_for_plan(conn: asyncpg.Connection, org_id: str, plan: Plan) -> list[str]:
    """Inside the caller's transaction: switch off what `plan` no longer allows."""
    disallowed_events = [t.value for t in plan_gate.forbidden_events(plan, EventType)]
    disallowed_kinds = [kind.value for kind in plan_gate.kinds_not_allowed(plan)]
    return await repository.deactivate_for_plan(
        conn, org_id, disallowed_events, disallowed_kinds, PLAN_DOWNGRADE
    )
