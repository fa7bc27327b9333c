"""Schemathesis against the api's own OpenAPI schema, on a real `hookpost api` process.

Every operation the schema lists gets generated requests (valid and invalid bodies, path
and query values) sent with a real org token (the admin token on /admin routes): no answer
may be a 5xx, and every 4xx must be in the SPEC §4 shape `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from harness.orgs import create_org
from harness.process import Process
from tests.support.stacks import api_process

CASES_PER_MODE = 12  # per operation, valid (positive) and invalid (negative) inputs each
BUDGET_S = 60.0


@pytest.fixture(scope="module")
def fuzzed_api(test_env: dict[str, str], db_pool: object) -> Iterator[Process]:
    # db_pool: the database exists and is migrated before the api starts.
    api = api_process(test_env).start()
    try:
        yield api
    finally:
        api.stop()


def real_ids(base_url: str, org: dict[str, str]) -> dict[str, str]:
    """Existing resources, so half the cases reach past the 404 of an unknown id."""
    headers = {"Authorization": f"Bearer {org['apiToken']}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        sub = http.post(
            "/api/v1/webhook-subscriptions",
            json={"webhookUrl": "http://127.0.0.1:9/x", "events": ["MAPPING_COMPLETED"]},
        )
        dest = http.post(
            "/api/v1/delivery-destinations",
            json={
                "type": "WEBHOOK",
                "webhookUrl": "http://127.0.0.1:9/y",
                "events": ["mapping.completed"],
            },
        )
        event = http.post(
            "/api/v1/events", json={"type": "mapping.completed", "data": {"mappingJobId": "j"}}
        )
    assert (sub.status_code, dest.status_code, event.status_code) == (201, 201, 202)
    return {
        "subscription_id": sub.json()["id"],
        "destination_id": dest.json()["id"],
        "event_id": event.json()["eventId"],
        "organization_id": org["organizationId"],
    }


def shape_problem(status: int, body: Any) -> str | None:
    """What is wrong with an error answer, or None when it is in the SPEC §4 shape."""
    if not isinstance(body, dict) or set(body) != {"error"}:
        return f"{status}: body is not {{'error': …}}: {body!r}"
    error = body["error"]
    if not isinstance(error, dict):
        return f"{status}: error is not an object: {body!r}"
    if not isinstance(error.get("code"), str) or not error["code"]:
        return f"{status}: error.code missing: {body!r}"
    if not isinstance(error.get("message"), str) or not error["message"]:
        return f"{status}: error.message missing: {body!r}"
    return None


def fuzz_operation(
    operation: Any, base_url: str, headers: dict[str, str], ids: dict[str, str]
) -> Any:
    """A hypothesis test of one operation that records what it saw into the given dicts."""

    def run(
        problems: list[str], sent: dict[str, int], statuses: dict[int, int], mode: GenerationMode
    ) -> None:
        @given(case=operation.as_strategy(generation_mode=mode), use_real_ids=st.booleans())
        @hypothesis.settings(
            max_examples=CASES_PER_MODE,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        def fuzz(case: schemathesis.Case, use_real_ids: bool) -> None:
            if use_real_ids and case.path_parameters:
                for name in case.path_parameters:
                    case.path_parameters[name] = ids.get(name, case.path_parameters[name])
            response = case.call(base_url=base_url, headers=headers, timeout=30)
            sent[operation.label] = sent.get(operation.label, 0) + 1
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            where = f"{case.method} {case.formatted_path}"
            if response.status_code >= 500:
                problems.append(f"{where} → {response.status_code}: {response.text[:300]}")
            elif response.status_code >= 400:
                try:
                    body = response.json()
                except ValueError:
                    body = response.text[:300]
                problem = shape_problem(response.status_code, body)
                if problem:
                    problems.append(f"{where} → {problem}")

        fuzz()

    return run


def test_no_generated_request_gets_a_5xx_or_an_unshaped_error(
    fuzzed_api: Process,
) -> None:
    base_url = f"http://127.0.0.1:{fuzzed_api.port}"
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    org = create_org(fuzzed_api.env, "fuzz", "PRO_MAX")
    token = org["apiToken"]
    ids = real_ids(base_url, org)
    admin_token = fuzzed_api.env["HOOKPOST_ADMIN_TOKEN"]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]

    problems: list[str] = []
    sent: dict[str, int] = {}
    statuses: dict[int, int] = {}
    started = time.monotonic()
    for operation in operations:
        bearer = admin_token if operation.path.startswith("/api/v1/admin") else token
        run = fuzz_operation(operation, base_url, {"Authorization": f"Bearer {bearer}"}, ids)
        run(problems, sent, statuses, GenerationMode.POSITIVE)
        try:
            run(problems, sent, statuses, GenerationMode.NEGATIVE)
        except hypothesis.errors.Unsatisfiable:
            pass  # nothing to break in it: no parameters and no body (GET /healthz)
    elapsed = time.monotonic() - started
    total = sum(sent.values())
    print(f"fuzz: {total} requests over {len(sent)} operations in {elapsed:.1f}s; {statuses}")
    assert not problems, "\n".join(problems[:20])
    assert total >= 300, sent
    assert set(sent) == {op.label for op in operations}  # every operation was exercised
    assert elapsed < BUDGET_S * 2, f"fuzzing took {elapsed:.0f}s"
