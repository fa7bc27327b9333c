"""An agent sink push above HOOKPOST_SINK_PAYLOAD_CAP_BYTES (here 2 KiB, a stack of its own):
the push still happens, signed, with `results: []`, `resultsTruncated` and a `resultsRef`
that serves the full results; under the cap the results travel whole."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from harness.receiver import Receiver
from harness.services import service_env
from harness.stack import Stack
from libs.domain.ids import IdPrefix, new_id
from tests.e2e.conftest import E2E_RETRY_SCALE, auth
from tests.e2e.test_agent_sinks_e2e import (
    HMAC_SECRET,
    RESULTS,
    SINK_KEYS,
    make_agent,
    make_sink,
    mt_verifies,
)

CAP_BYTES = 2048


@pytest.fixture(scope="module")
def stack_env(test_env: dict[str, str], db_pool: object) -> dict[str, str]:
    return service_env(
        test_env,
        HOOKPOST_RETRY_DELAY_SCALE=E2E_RETRY_SCALE,
        HOOKPOST_SINK_PAYLOAD_CAP_BYTES=str(CAP_BYTES),
    )


async def complete(
    db_pool: asyncpg.Pool,
    client: httpx.AsyncClient,
    org: dict[str, str],
    agent_id: str,
    results: list,
) -> str:
    job_id = new_id(IdPrefix.MAPPING_JOB)
    await db_pool.execute(
        "INSERT INTO mapping_jobs (id, organization_id, agent_id, status, stats, results,"
        " completed_at) VALUES ($1, $2, $3, 'COMPLETED', $4, $5, now())",
        job_id,
        org["organizationId"],
        agent_id,
        {"total": len(results), "matched": 0, "unmatched": len(results)},
        results,
    )
    response = await client.post(
        "/api/v1/events",
        headers=auth(org),
        json={"type": "mapping.completed", "data": {"mappingJobId": job_id, "rowCount": 1}},
    )
    assert response.status_code == 202, response.text
    return job_id


async def test_over_the_cap_results_are_referenced_and_served(
    stack: Stack, api_client: httpx.AsyncClient, receiver: Receiver, db_pool: asyncpg.Pool
) -> None:
    org = stack.create_org("PRO_MAX")
    agent = await make_agent(api_client, org, push=True)
    await make_sink(api_client, org, agent["id"], receiver.script("/capped", [200]))
    big = [
        {"partnerRowId": f"row_{i:04d}", "referenceHotelId": None, "matchMethod": None}
        for i in range(200)
    ]
    small_job = await complete(db_pool, api_client, org, agent["id"], RESULTS)
    big_job = await complete(db_pool, api_client, org, agent["id"], big)

    requests = await receiver.wait_for("/capped", 2)
    by_job = {r.json()["jobId"]: r for r in requests}
    small = by_job[small_job]
    assert set(small.json()) == SINK_KEYS and small.json()["results"] == RESULTS

    capped = by_job[big_job]
    assert len(capped.body) <= CAP_BYTES and mt_verifies(capped, HMAC_SECRET)
    payload = capped.json()
    assert payload["results"] == [] and payload["resultsTruncated"] is True
    assert payload["stats"]["total"] == 200
    ref = payload["resultsRef"]
    assert ref == f"/api/v1/agents/{agent['id']}/jobs/{big_job}/results"
    served = await api_client.get(ref, headers=auth(org))
    assert served.status_code == 200, served.text
    assert served.json() == {"jobId": big_job, "agentId": agent["id"], "results": big}
