from __future__ import annotations

from typing import Annotated

import asyncpg
import orjson
from fastapi import APIRouter, Query, Response, status

from services.api.agents import service
from services.api.agents.schemas import (
    WIRE_AUTH_SCHEMES,
    AgentIn,
    AgentList,
    AgentOut,
    AgentPatch,
    AgentRules,
    DataSourceConfigOut,
    DataSourceIn,
    DataSourceList,
    DataSourceOut,
    DataSourceSecretOut,
    SyncList,
    SyncOut,
)
from services.api.auth import Org
from services.api.deliveries.recovery import recover_endpoint
from services.api.deliveries.schemas import RecoverAccepted, RecoverIn
from services.api.endpoints.schemas import TestQueued
from services.api.endpoints.service import Endpoint
from services.api.endpoints.test_limits import TestSendLimit
from services.api.limits import DEFAULT_LIMIT, clamp_limit
from services.api.routing import ApiRoute
from services.api.state import State

router = APIRouter(prefix="/agents", tags=["agents"], route_class=ApiRoute)


def _agent_out(record: asyncpg.Record) -> AgentOut:
    """The row as it is, but for its rules: with their defaults filled in."""
    return AgentOut(**{**dict(record), "rules": service.rules_of(record)})


def _data_source_out(endpoint: Endpoint) -> DataSourceOut:
    assert endpoint.agent_id is not None  # only an agent's sinks reach here
    return DataSourceOut(
        id=endpoint.id,
        agent_id=endpoint.agent_id,
        organization_id=endpoint.organization_id,
        name=endpoint.name,
        config=DataSourceConfigOut(
            url=endpoint.url_masked,
            auth_scheme=WIRE_AUTH_SCHEMES[endpoint.signature_scheme],  # type: ignore[arg-type]
        ),
        secret=DataSourceSecretOut(value_masked=endpoint.secret_masked),
        status=endpoint.status,
        deactivated_reason=endpoint.deactivated_reason,
        rate_limit_per_second=endpoint.rate_limit_per_second,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
    )


# --- agents -------------------------------------------------------------------------------


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AgentOut)
async def create_agent(body: AgentIn, state: State, org: Org) -> AgentOut:
    """A new ACTIVE agent; its rules start with outbound push off."""
    return _agent_out(await service.create_agent(state.pool, org.id, body.name))


@router.get("", response_model=AgentList)
async def list_agents(state: State, org: Org) -> AgentList:
    return AgentList(agents=[_agent_out(r) for r in await service.list_agents(state.pool, org.id)])


@router.get("/{agent_id}", response_model=AgentOut)
async def get_agent(agent_id: str, state: State, org: Org) -> AgentOut:
    return _agent_out(await service.get_agent(state.pool, org.id, agent_id))


@router.patch("/{agent_id}", response_model=AgentOut)
async def update_agent(agent_id: str, body: AgentPatch, state: State, org: Org) -> AgentOut:
    """Rename, activate (`"status": "ACTIVE"`) or deactivate (`"INACTIVE"`) the agent.

    An INACTIVE agent's sinks receive nothing, whatever its rules say."""
    return _agent_out(await service.update_agent(state.pool, org.id, agent_id, body))


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_agent(agent_id: str, state: State, org: Org) -> Response:
    """Delete the agent with its sinks and their sync history (its jobs stay)."""
    await service.delete_agent(state.pool, org.id, agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{agent_id}/rules", response_model=AgentRules)
async def get_rules(agent_id: str, state: State, org: Org) -> AgentRules:
    return service.rules_of(await service.get_agent(state.pool, org.id, agent_id))


@router.put("/{agent_id}/rules", response_model=AgentRules)
async def put_rules(agent_id: str, body: AgentRules, state: State, org: Org) -> AgentRules:
    """Replace the rules: `{"data_sinks": {"auto_push_on_job_complete": bool,
    "retry_failed_push": 0..3}}` (omitted keys take their defaults: false, 2)."""
    return service.rules_of(await service.set_rules(state.pool, org.id, agent_id, body))


@router.get("/{agent_id}/jobs/{job_id}/results")
async def get_job_results(agent_id: str, job_id: str, state: State, org: Org) -> Response:
    """`{"jobId", "agentId", "results"}`: the full results a sink push left out
    (`resultsRef`) when they exceeded the sink payload cap."""
    results_json = await service.job_results(state.pool, org.id, agent_id, job_id)
    body = orjson.dumps(
        {"jobId": job_id, "agentId": agent_id, "results": orjson.Fragment(results_json)}
    )
    return Response(body, media_type="application/json")


# --- data sources (results sinks), PRO_MAX and above --------------------------------------


@router.post(
    "/{agent_id}/data-sources", status_code=status.HTTP_201_CREATED, response_model=DataSourceOut
)
async def create_data_source(
    agent_id: str, body: DataSourceIn, state: State, org: Org
) -> DataSourceOut:
    """Add a results sink: every completed job of this agent is POSTed to `config.url` once
    the agent's rules turn `auto_push_on_job_complete` on. The secret is stored encrypted
    and only ever shown masked."""
    created = await service.create_data_source(
        state.pool, state.settings, org.id, org.plan, agent_id, body
    )
    return _data_source_out(created)


@router.get("/{agent_id}/data-sources", response_model=DataSourceList)
async def list_data_sources(agent_id: str, state: State, org: Org) -> DataSourceList:
    found = await service.list_data_sources(state.pool, org.id, org.plan, agent_id)
    return DataSourceList(data_sources=[_data_source_out(e) for e in found])


@router.get("/{agent_id}/data-sources/{ds_id}", response_model=DataSourceOut)
async def get_data_source(agent_id: str, ds_id: str, state: State, org: Org) -> DataSourceOut:
    found = await service.get_data_source(state.pool, org.id, org.plan, agent_id, ds_id)
    return _data_source_out(found)


@router.put("/{agent_id}/data-sources/{ds_id}", response_model=DataSourceOut)
async def replace_data_source(
    agent_id: str, ds_id: str, body: DataSourceIn, state: State, org: Org
) -> DataSourceOut:
    """Replace the sink (same body as create; without `secret` the stored one is kept,
    unless `authScheme` changes); `"status": "ACTIVE"` re-activates a sink a plan downgrade
    switched off."""
    updated = await service.replace_data_source(
        state.pool, state.settings, org.id, org.plan, agent_id, ds_id, body
    )
    return _data_source_out(updated)


@router.delete("/{agent_id}/data-sources/{ds_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_data_source(agent_id: str, ds_id: str, state: State, org: Org) -> Response:
    """Delete the sink and its sync history."""
    await service.delete_data_source(state.pool, org.id, org.plan, agent_id, ds_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{agent_id}/data-sources/{ds_id}/recover",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RecoverAccepted,
)
async def recover(
    agent_id: str, ds_id: str, body: RecoverIn, state: State, org: Org
) -> RecoverAccepted:
    """Re-send this sink's PARKED, FAILED and DEAD pushes created since `since`, each once
    → `{"deliveries": N}`. 409 while the sink is INACTIVE: PUT it back to ACTIVE first."""
    await service.get_data_source(state.pool, org.id, org.plan, agent_id, ds_id)
    count = await recover_endpoint(state, org.id, ds_id, body.since, kind=service.DOOR.kind)
    return RecoverAccepted(deliveries=count)


@router.post(
    "/{agent_id}/data-sources/{ds_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TestQueued,
    dependencies=[TestSendLimit],
)
async def send_test(agent_id: str, ds_id: str, state: State, org: Org) -> TestQueued:
    """Push a synthetic payload (the real shape, a made-up job), signed with the sink's
    secret, through the same pipeline → `{"deliveryId"}`. Works before auto-push is on."""
    delivery_id = await service.send_test(
        state.pool, state.outbox, org.id, org.plan, agent_id, ds_id
    )
    return TestQueued(delivery_id=delivery_id)


@router.get("/{agent_id}/data-sources/{ds_id}/syncs", response_model=SyncList)
async def list_syncs(
    agent_id: str,
    ds_id: str,
    state: State,
    org: Org,
    limit: Annotated[int, Query()] = DEFAULT_LIMIT,
) -> SyncList:
    """Every push attempt, newest first, with its status (`limit` 50, at most 200)."""
    rows = await service.syncs(state.pool, org.id, org.plan, agent_id, ds_id, clamp_limit(limit))
    return SyncList(
        syncs=[SyncOut(**dict(r), status="SUCCEEDED" if r["succeeded"] else "FAILED") for r in rows]
    )
