"""GET /event-types: every type, its plans, and the JSON Schema of its data from the models."""

from __future__ import annotations

import jsonschema
import pytest

from libs.domain.event_payloads import PAYLOAD_MODELS, ExportReadyData, MappingCompletedData
from libs.domain.event_types import CATALOGUE, EventType
from tests.api.conftest import Client, assert_error

URL = "/api/v1/event-types"

# A valid and an invalid `data` per type, judged by the published schema itself.
SAMPLES: dict[str, tuple[dict, dict]] = {
    "mapping.completed": (
        {"mappingJobId": "job_1", "status": "COMPLETED", "rowCount": 4821, "exportFileId": "ef_1"},
        {"mappingJobId": "job_1", "status": "COMPLETED"},
    ),
    "mapping.error.resolved": (
        {"mappingJobId": "job_1", "errorId": "err_1"},
        {"mappingJobId": "job_1"},
    ),
    "inventory.duplicate.resolved": (
        {"inventoryItemId": "inv_1", "duplicateOfId": "inv_2"},
        {"inventoryItemId": "inv_1"},
    ),
    "mapping.failed": (
        {"mappingJobId": "job_1", "status": "FAILED", "error": {"code": "x", "message": "y"}},
        {"mappingJobId": "job_1", "status": "FAILED", "error": {"code": "x"}},
    ),
    "export.ready": (
        {
            "exportFileId": "ef_1",
            "mappingJobId": "job_1",
            "downloadUrl": "https://files.example/ef_1",
            "format": "CSV",
            "fileSize": 1024,
            "rowCount": 10,
        },
        {
            "exportFileId": "ef_1",
            "mappingJobId": "job_1",
            "downloadUrl": "https://files.example/ef_1",
            "format": "PDF",
            "fileSize": 1024,
            "rowCount": 10,
        },
    ),
    "webhook.test": ({"message": "hi", "destinationId": "dest_1"}, {"destinationId": "dest_1"}),
    "endpoint.disabled": (
        {
            "endpointId": "sub_1",
            "endpointKind": "SUBSCRIPTION",
            "url": "https://hooks.example/x",
            "reason": "ENDPOINT_GONE",
            "httpStatus": 410,
            "disabledAt": "2026-12-06T14:00:00Z",
        },
        {
            "endpointId": "sub_1",
            "endpointKind": "SUBSCRIPTION",
            "url": "https://hooks.example/x",
            "reason": "PLAN_DOWNGRADE",
            "disabledAt": "2026-12-06T14:00:00Z",
        },
    ),
    "report.completed": (
        {"jobId": "rjob_1", "reportId": "rpt_1", "status": "completed"},
        {"jobId": "rjob_1", "status": "completed"},
    ),
    "report.failed": (
        {"jobId": "rjob_1", "status": "failed", "error": {"code": "x", "message": "y"}},
        {"jobId": "rjob_1", "status": "failed", "error": {"message": "y"}},
    ),
}


async def test_lists_every_event_type_with_plans_and_schema(client: Client) -> None:
    response = await client.get(URL)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"eventTypes"}
    listed = {item["type"]: item for item in body["eventTypes"]}
    assert list(listed) == [t.value for t in EventType]
    expected_plans = {
        "mapping.completed": ["FREE", "PRO", "PRO_MAX", "ENTERPRISE"],
        "mapping.error.resolved": ["PRO", "PRO_MAX", "ENTERPRISE"],
        "inventory.duplicate.resolved": ["PRO", "PRO_MAX", "ENTERPRISE"],
        "mapping.failed": ["FREE", "PRO", "PRO_MAX", "ENTERPRISE"],
        "export.ready": ["FREE", "PRO", "PRO_MAX", "ENTERPRISE"],
        "webhook.test": ["FREE", "PRO", "PRO_MAX", "ENTERPRISE"],
        "endpoint.disabled": ["FREE", "PRO", "PRO_MAX", "ENTERPRISE"],
        "report.completed": ["FREE", "PRO", "PRO_MAX", "ENTERPRISE"],
        "report.failed": ["FREE", "PRO", "PRO_MAX", "ENTERPRISE"],
    }
    for event_type in EventType:
        item = listed[event_type.value]
        assert set(item) == {
            "type",
            "enumName",
            "minimumPlan",
            "plans",
            "subscribable",
            "description",
            "dataSchema",
        }
        assert item["enumName"] == event_type.name
        assert item["minimumPlan"] == CATALOGUE[event_type].minimum_plan.value
        assert item["plans"] == expected_plans[event_type.value]
        assert item["subscribable"] is CATALOGUE[event_type].subscribable
        assert item["subscribable"] is (event_type.value.split(".")[0] not in ("webhook", "report"))
        assert item["description"] == CATALOGUE[event_type].description
        # The schema is the model's: changing a model changes the published schema.
        assert item["dataSchema"] == PAYLOAD_MODELS[event_type].model_json_schema(by_alias=True)


async def test_schemas_accept_valid_data_and_reject_invalid(client: Client) -> None:
    listed = {item["type"]: item for item in (await client.get(URL)).json()["eventTypes"]}
    assert set(SAMPLES) == set(listed)
    for name, (valid, invalid) in SAMPLES.items():
        schema = listed[name]["dataSchema"]
        jsonschema.validate(valid, schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(invalid, schema)
        # The pydantic model agrees with its schema on both.
        PAYLOAD_MODELS[EventType(name)].model_validate(valid)


async def test_schema_names_are_the_wire_names(client: Client) -> None:
    listed = {item["type"]: item for item in (await client.get(URL)).json()["eventTypes"]}
    completed = listed["mapping.completed"]["dataSchema"]
    assert set(completed["required"]) == {"mappingJobId", "rowCount"}
    assert {"mappingJobId", "status", "rowCount", "exportFileId"} <= set(completed["properties"])
    ready = listed["export.ready"]["dataSchema"]
    assert set(ready["required"]) == {
        "exportFileId",
        "mappingJobId",
        "downloadUrl",
        "format",
        "fileSize",
        "rowCount",
    }
    # Models serialize to exactly the names their schema publishes.
    sample = MappingCompletedData(mapping_job_id="job_1", row_count=3)
    assert set(sample.model_dump(by_alias=True)) <= set(completed["properties"])
    export = ExportReadyData.model_validate(SAMPLES["export.ready"][0])
    assert set(export.model_dump(by_alias=True)) == set(ready["properties"])


async def test_requires_authentication(client: Client) -> None:
    assert_error(await client.http.get(URL), 401, "UNAUTHORIZED")
    assert_error(
        await client.http.get(URL, headers={"Authorization": "Bearer nope"}), 401, "UNAUTHORIZED"
    )
