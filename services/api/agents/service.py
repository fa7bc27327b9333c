"""Agents and their results sinks (seed 003): a thin door onto the endpoints domain.

What is this door's own: agents (`agt_…`, in the org's workspace `ws_…`) with rules that
opt in to outbound push; sinks (`ds_…`) that are AGENT_SINK endpoints tied to an agent,
hearing `mapping.completed`, authenticated with the user's own secret (HmacSha256 →
X-MT-Signature, Bearer, Basic); a /test that sends a synthetic sink payload; syncs, which
are the sink's attempts. URL safety, encryption, masking, delivery and retries are the
shared pipeline's: the dispatcher matches a sink only when the org's plan, the agent's
status and rules and the job's agent say so (services/dispatcher/repository.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import asyncpg
from ulid import ULID

from libs.domain import plan_gate
from libs.domain.endpoint_kinds import EndpointKind
from libs.domain.event_payloads import WebhookTestData
from libs.domain.event_types import EventType
from libs.domain.ids import IdPrefix, new_id
from libs.domain.plans import Plan
from libs.domain.signing import SinkAuthScheme
from libs.domain.sink_payload import SinkPayload, SinkResultRow, SinkStats
from libs.infra.settings import Settings
from services.api.agents import repository
from services.api.agents.schemas import AUTH_SCHEMES, AgentPatch, AgentRules, DataSourceIn
from services.api.audit import service as audit
from services.api.endpoints import service as endpoints
from services.api.endpoints.door import WebhookDoor
from services.api.endpoints.service import Endpoint, EndpointSpec
from services.api.errors import BadRequestError, ForbiddenError, NotFoundError, found
from services.api.events.service import EventOutbox

SINK_MINIMUM_PLAN = plan_gate.kind_minimum_plan(EndpointKind.AGENT_SINK)
SINK_EVENTS = [EventType.MAPPING_COMPLETED]
TEST_MESSAGE = "This is a test push from hookpost to your agent results sink"
# An Authorization header value: printable ASCII, no line breaks (they would split headers).
_HEADER_SAFE = re.compile(r"^[\x20-\x7e]+$")

DOOR = WebhookDoor(EndpointKind.AGENT_SINK, IdPrefix.DATA_SOURCE)


def workspace_id(org_id: str) -> str:
    """The org's workspace: one per organization, named after it (`org_X` → `ws_X`)."""
    return f"{IdPrefix.WORKSPACE.value}_{org_id.partition('_')[2]}"


def _agent_not_found(agent_id: str) -> NotFoundError:
    return NotFoundError(f"agent {agent_id!r} not found")


# --- agents -------------------------------------------------------------------------------


async def create_agent(pool: asyncpg.Pool, org_id: str, name: str) -> asyncpg.Record:
    agent_id = new_id(IdPrefix.AGENT)
    async with pool.acquire() as conn, conn.transaction():
        record = await repository.insert(conn, agent_id, org_id, name, workspace_id(org_id))
        await audit.record(conn, org_id, "agent.created", {"agentId": agent_id, "name": name})
    return record


async def get_agent(pool: asyncpg.Pool, org_id: str, agent_id: str) -> asyncpg.Record:
    return found(await repository.get(pool, org_id, agent_id), _agent_not_found(agent_id))


async def list_agents(pool: asyncpg.Pool, org_id: str) -> list[asyncpg.Record]:
    return await repository.list_for_org(pool, org_id)


async def update_agent(
    pool: asyncpg.Pool, org_id: str, agent_id: str, patch: AgentPatch
) -> asyncpg.Record:
    if patch.name is None and patch.status is None:
        raise BadRequestError("nothing to change: give name and/or status")
    status = None if patch.status is None else patch.status.value
    async with pool.acquire() as conn, conn.transaction():
        record = await repository.update(conn, org_id, agent_id, patch.name, status)
        if record is None:
            raise _agent_not_found(agent_id)
        changes = patch.model_dump(mode="json", exclude_none=True)
        await audit.record(conn, org_id, "agent.updated", {"agentId": agent_id, **changes})
    return record


async def delete_agent(pool: asyncpg.Pool, org_id: str, agent_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        if not await repository.delete(conn, org_id, agent_id):
            raise _agent_not_found(agent_id)
        await audit.record(conn, org_id, "agent.deleted", {"agentId": agent_id})


def rules_of(record: asyncpg.Record) -> AgentRules:
    """Stored rules with defaults filled in (a row written before a rule existed has none)."""
    stored = record["rules"] or {}
    return AgentRules.model_validate({"data_sinks": stored.get("data_sinks") or {}})


async def set_rules(
    pool: asyncpg.Pool, org_id: str, agent_id: str, rules: AgentRules
) -> asyncpg.Record:
    stored = rules.model_dump(mode="json")
    async with pool.acquire() as conn, conn.transaction():
        record = await repository.set_rules(conn, org_id, agent_id, stored)
        if record is None:
            raise _agent_not_found(agent_id)
        await audit.record(conn, org_id, "agent.rules_updated", {"agentId": agent_id, **stored})
    return record


async def job_results(pool: asyncpg.Pool, org_id: str, agent_id: str, job_id: str) -> str:
    """A job's full results as JSON text (the `resultsRef` of an over-cap push)."""
    await get_agent(pool, org_id, agent_id)
    record = found(
        await repository.job_results(pool, org_id, agent_id, job_id),
        NotFoundError(f"mapping job {job_id!r} of agent {agent_id!r} not found"),
    )
    results_json: str = record["results_json"]
    return results_json


# --- data sources (results sinks) ---------------------------------------------------------


def require_sink_plan(plan: Plan) -> None:
    if not plan_gate.allows_kind(plan, EndpointKind.AGENT_SINK):
        raise ForbiddenError(
            f"agent results sinks need the {SINK_MINIMUM_PLAN} plan or above", events=[]
        )


def _check_secret(scheme: SinkAuthScheme, value: str) -> None:
    if scheme is SinkAuthScheme.HMAC_SHA256:
        return  # any text is a key; it never travels in a header
    if not _HEADER_SAFE.match(value) or value != value.strip():
        raise BadRequestError(
            "secret.value must be printable ASCII without line breaks or surrounding spaces"
            f" (it is sent in the Authorization header for {scheme.name.title()})"
        )
    if scheme is SinkAuthScheme.BASIC:
        user, colon, _ = value.partition(":")
        if not colon or not user:
            raise BadRequestError('for Basic, secret.value must be "user:password"')


async def _sink_of(pool: asyncpg.Pool, org_id: str, agent_id: str, ds_id: str) -> Endpoint:
    endpoint = await DOOR.get(pool, org_id, ds_id)
    if endpoint.agent_id != agent_id:
        raise NotFoundError(f"data source {ds_id!r} of agent {agent_id!r} not found")
    return endpoint


def _sink_spec(agent_id: str, body: DataSourceIn, current: Endpoint | None) -> EndpointSpec:
    """The sink a body asks for; on a replace (`current`), no secret keeps the stored one,
    which was checked for its scheme when given: so the scheme may not change without it."""
    scheme = AUTH_SCHEMES[body.config.auth_scheme]
    if body.secret is not None:
        _check_secret(scheme, body.secret.value)
    elif current is None:
        raise BadRequestError("secret.value: required")
    elif current.signature_scheme != scheme.value:
        raise BadRequestError("secret.value: required to change authScheme")
    return EndpointSpec(
        url=body.config.url,
        events=SINK_EVENTS,
        name=body.name,
        status=body.status,
        signature_scheme=scheme.value,
        config={"format": body.format},
        secret=None if body.secret is None else body.secret.value,
        agent_id=agent_id,
        rate_limit_per_second=body.rate_limit_per_second,
    )


async def create_data_source(
    pool: asyncpg.Pool,
    settings: Settings,
    org_id: str,
    plan: Plan,
    agent_id: str,
    body: DataSourceIn,
) -> Endpoint:
    require_sink_plan(plan)
    await get_agent(pool, org_id, agent_id)
    spec = _sink_spec(agent_id, body, None)
    created = await endpoints.create_endpoint(
        pool, settings, org_id, plan, DOOR.kind, DOOR.id_prefix, spec
    )
    return created.endpoint


async def replace_data_source(
    pool: asyncpg.Pool,
    settings: Settings,
    org_id: str,
    plan: Plan,
    agent_id: str,
    ds_id: str,
    body: DataSourceIn,
) -> Endpoint:
    """Replace the whole sink; without a secret in `body`, the stored one is kept."""
    current = await get_data_source(pool, org_id, plan, agent_id, ds_id)
    spec = _sink_spec(agent_id, body, current)
    return await endpoints.replace_endpoint(pool, settings, org_id, plan, DOOR.kind, ds_id, spec)


async def list_data_sources(
    pool: asyncpg.Pool, org_id: str, plan: Plan, agent_id: str
) -> list[Endpoint]:
    require_sink_plan(plan)
    await get_agent(pool, org_id, agent_id)
    # An org has a handful of sinks: filtering the org's sinks here needs no SQL of its own.
    return [e for e in await DOOR.list_all(pool, org_id, False) if e.agent_id == agent_id]


async def get_data_source(
    pool: asyncpg.Pool, org_id: str, plan: Plan, agent_id: str, ds_id: str
) -> Endpoint:
    require_sink_plan(plan)
    await get_agent(pool, org_id, agent_id)
    return await _sink_of(pool, org_id, agent_id, ds_id)


async def delete_data_source(
    pool: asyncpg.Pool, org_id: str, plan: Plan, agent_id: str, ds_id: str
) -> None:
    await get_data_source(pool, org_id, plan, agent_id, ds_id)
    await DOOR.delete(pool, org_id, ds_id)


def synthetic_payload(agent: asyncpg.Record) -> SinkPayload:
    """What /test pushes: the real payload shape with a made-up two-row job."""
    return SinkPayload(
        job_id=new_id(IdPrefix.MAPPING_JOB),
        agent_id=agent["id"],
        workspace_id=agent["workspace_id"],
        completed_at=datetime.now(UTC).replace(microsecond=0),
        stats=SinkStats(total=2, matched=1, unmatched=1),
        results=[
            SinkResultRow(
                partner_row_id=f"row_{ULID()}",
                reference_hotel_id=f"ref_{ULID()}",
                match_method="STANDARD",
                match_confidence=None,
            ),
            SinkResultRow(partner_row_id=f"row_{ULID()}"),
        ],
    )


async def send_test(
    pool: asyncpg.Pool,
    outbox: EventOutbox,
    org_id: str,
    plan: Plan,
    agent_id: str,
    ds_id: str,
) -> str:
    """Queue a synthetic push to this sink only (whatever the rules say); its delivery id."""
    require_sink_plan(plan)
    agent = await get_agent(pool, org_id, agent_id)
    await _sink_of(pool, org_id, agent_id, ds_id)
    data = WebhookTestData(
        message=TEST_MESSAGE,
        data_source_id=ds_id,
        sink_payload=synthetic_payload(agent),
    )
    dumped: dict[str, Any] = data.model_dump(mode="json", by_alias=True, exclude_none=True)
    # The sink payload keeps its null fields: receivers see the real shape.
    dumped["sinkPayload"] = data.sink_payload.model_dump(  # type: ignore[union-attr]
        mode="json", by_alias=True, exclude={"results_truncated", "results_ref"}
    )
    return await DOOR.send_test(pool, outbox, org_id, ds_id, dumped)


async def syncs(
    pool: asyncpg.Pool, org_id: str, plan: Plan, agent_id: str, ds_id: str, limit: int
) -> list[asyncpg.Record]:
    await get_data_source(pool, org_id, plan, agent_id, ds_id)
    return await repository.syncs(pool, org_id, ds_id, limit)
