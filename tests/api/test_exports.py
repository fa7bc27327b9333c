"""Export files (seed 000) through the API: the org's format, the automatic export on
completion when an endpoint wants export.ready, the manual export of a COMPLETED job, and
the signed, time-limited download link."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import asyncpg
import openpyxl
import pytest

from services.api.exports import links
from tests.api.conftest import Client, assert_error, subscription_body

JOBS = "/api/v1/mapping-jobs"
FORMAT = "/api/v1/export-format"
RESULTS = [
    {"sku": "A-1", "name": "Hotel Águila", "price": 12.5, "match": {"id": "r1"}},
    {"sku": "B-2", "name": '=HYPERLINK("x")', "matched": False},
    {"sku": "C-3", "note": 'line\nbreak, comma "quoted"'},
]
STATS = {"total": 3, "matched": 2, "unmatched": 1}


async def completed_job(client: Client, results: list[dict] = RESULTS) -> dict:
    job = (await client.post(JOBS, json={})).json()
    response = await client.post(
        f"{JOBS}/{job['jobId']}/complete", json={"stats": STATS, "results": results}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def download(client: Client, url: str) -> tuple[int, bytes, dict]:
    """GET a download link with NO bearer token (the link is the credential)."""
    parts = urlsplit(url)
    response = await client.http.get(f"{parts.path}?{parts.query}")
    return response.status_code, response.content, dict(response.headers)


async def test_export_format_defaults_to_csv_and_is_settable(client: Client) -> None:
    assert (await client.get(FORMAT)).json() == {"format": "CSV"}
    for fmt in ("JSON", "XLSX", "CSV"):
        response = await client.put(FORMAT, json={"format": fmt})
        assert response.status_code == 200 and response.json() == {"format": fmt}
        assert (await client.get(FORMAT)).json() == {"format": fmt}
    for bad in ({"format": "PDF"}, {"format": "csv"}, {}):
        assert_error(await client.put(FORMAT, json=bad), 400, "BAD_REQUEST")
    assert (await client.get(FORMAT)).json() == {"format": "CSV"}
    actions = [e["action"] for e in (await client.get("/api/v1/audit-log")).json()["entries"]]
    assert actions.count("organization.export_format_changed") == 3


async def test_manual_export_needs_a_completed_job(client: Client) -> None:
    job = (await client.post(JOBS, json={})).json()
    error = assert_error(await client.post(f"{JOBS}/{job['jobId']}/exports"), 409, "CONFLICT")
    assert error["status"] == "RUNNING"
    assert_error(await client.post(f"{JOBS}/job_nope/exports"), 404, "NOT_FOUND")


@pytest.mark.parametrize("fmt", ["CSV", "JSON", "XLSX"])
async def test_manual_export_renders_the_results_in_the_orgs_format(
    client: Client, db_pool: asyncpg.Pool, fmt: str
) -> None:
    await client.put(FORMAT, json={"format": fmt})
    job = await completed_job(client)
    response = await client.post(f"{JOBS}/{job['jobId']}/exports")
    assert response.status_code == 202, response.text
    export = response.json()
    assert export["exportFileId"].startswith("exp_")
    assert export["mappingJobId"] == job["jobId"]
    assert export["format"] == fmt and export["rowCount"] == 3

    status, content, headers = await download(client, export["downloadUrl"])
    assert status == 200
    assert len(content) == export["fileSize"]
    assert export["exportFileId"] in headers["content-disposition"]
    if fmt == "CSV":
        assert headers["content-type"] == "text/csv; charset=utf-8"
        rows = list(csv.DictReader(io.StringIO(content.decode("utf-8"))))
        assert [r["sku"] for r in rows] == ["A-1", "B-2", "C-3"]
        assert rows[0]["name"] == "Hotel Águila" and json.loads(rows[0]["match"]) == {"id": "r1"}
        assert rows[2]["note"] == 'line\nbreak, comma "quoted"'
        assert rows[1]["matched"] == "false" and rows[1]["price"] == ""
    elif fmt == "JSON":
        assert headers["content-type"] == "application/json"
        assert json.loads(content) == RESULTS
    else:
        assert headers["content-type"].startswith("application/vnd.openxmlformats")
        sheet = openpyxl.load_workbook(io.BytesIO(content)).active
        values = [list(row) for row in sheet.iter_rows(values_only=True)]
        assert values[0] == ["sku", "name", "price", "match", "matched", "note"]
        assert values[1][:4] == ["A-1", "Hotel Águila", 12.5, '{"id":"r1"}']
        assert values[2][1] == '=HYPERLINK("x")'  # text, never a formula
        assert sheet.cell(row=3, column=2).data_type == "s"
        assert values[2][4] is False
        assert len(values) == 4

    # The event that announces it, in the outbox.
    event = await db_pool.fetchrow(
        "SELECT data FROM events WHERE organization_id = $1 AND type = 'export.ready'",
        client.org_id,
    )
    assert event["data"] == {
        "exportFileId": export["exportFileId"],
        "mappingJobId": job["jobId"],
        "downloadUrl": export["downloadUrl"],
        "format": fmt,
        "fileSize": export["fileSize"],
        "rowCount": 3,
    }


async def test_completion_exports_only_when_an_active_endpoint_wants_export_ready(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    assert (await completed_job(client))["exportFileId"] is None
    inactive = await client.post(
        "/api/v1/export-webhooks", json={"url": "http://127.0.0.1:9/e", "active": False}
    )
    assert inactive.status_code == 201
    assert (await completed_job(client))["exportFileId"] is None

    # Any door's ACTIVE endpoint that chose export.ready wants the file: here a subscription.
    sub = subscription_body(webhookUrl="http://127.0.0.1:9/s", events=["EXPORT_READY"])
    assert (await client.post("/api/v1/webhook-subscriptions", json=sub)).status_code == 201
    job = await completed_job(client)
    file_id = job["exportFileId"]
    assert file_id is not None and file_id.startswith("exp_")

    events = await db_pool.fetch(
        "SELECT type, data FROM events WHERE organization_id = $1 AND data->>'mappingJobId' = $2",
        client.org_id,
        job["jobId"],
    )
    by_type = {e["type"]: e["data"] for e in events}
    assert set(by_type) == {"mapping.completed", "export.ready"}
    assert by_type["mapping.completed"]["exportFileId"] == file_id
    assert by_type["export.ready"]["exportFileId"] == file_id
    assert by_type["export.ready"]["rowCount"] == 3

    meta = await client.get(f"/api/v1/export-files/{file_id}")
    assert meta.status_code == 200
    assert meta.json()["fileSize"] == by_type["export.ready"]["fileSize"]
    status, content, _ = await download(client, meta.json()["downloadUrl"])
    assert status == 200 and len(content) == meta.json()["fileSize"]


async def test_download_links_refuse_tampering_and_expiry(client: Client) -> None:
    job = await completed_job(client)
    export = (await client.post(f"{JOBS}/{job['jobId']}/exports")).json()
    url = urlsplit(export["downloadUrl"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    path = url.path

    async def get(p: str, **params: object) -> object:
        return await client.http.get(p, params=params)

    ok = await get(path, **query)
    assert ok.status_code == 200
    tampered = query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1")
    assert_error(await get(path, expires=query["expires"], signature=tampered), 403, "FORBIDDEN")
    later = int(query["expires"]) + 1
    assert_error(await get(path, expires=later, signature=query["signature"]), 403, "FORBIDDEN")
    # A correctly signed link to another file id is still tied to its own id.
    other = path.replace(export["exportFileId"], "exp_someoneelse")
    assert_error(await get(other, **query), 403, "FORBIDDEN")
    # A link whose time is up (signed with the real key, but expired).
    past = urlsplit(links.signed_url("http://x", export["exportFileId"], 60, time.time() - 120))
    expired = {k: v[0] for k, v in parse_qs(past.query).items()}
    error = assert_error(await get(path, **expired), 403, "FORBIDDEN")
    assert "expired" in error["message"]
    # A valid signature for a file that does not exist.
    ghost = urlsplit(links.signed_url("http://x", "exp_ghost", 60))
    ghost_query = {k: v[0] for k, v in parse_qs(ghost.query).items()}
    assert_error(await get(ghost.path, **ghost_query), 404, "NOT_FOUND")
    assert_error(await get(path), 400, "BAD_REQUEST")
    assert_error(await get(path, expires="soon", signature="x"), 400, "BAD_REQUEST")


async def test_the_public_base_url_setting_shapes_the_link(client: Client) -> None:
    job = await completed_job(client)
    export = (await client.post(f"{JOBS}/{job['jobId']}/exports")).json()
    url = urlsplit(export["downloadUrl"])
    assert f"{url.scheme}://{url.netloc}" == "http://127.0.0.1:8000"
    assert url.path == f"/api/v1/export-files/{export['exportFileId']}/download"


async def test_another_orgs_export_file_metadata_is_not_found(
    client: Client, make_client: Callable
) -> None:
    other = await make_client()
    job = await completed_job(other)
    export = (await other.post(f"{JOBS}/{job['jobId']}/exports")).json()
    assert_error(
        await client.get(f"/api/v1/export-files/{export['exportFileId']}"), 404, "NOT_FOUND"
    )
    assert_error(await client.post(f"{JOBS}/{job['jobId']}/exports"), 404, "NOT_FOUND")


async def test_an_empty_result_set_exports_a_header_only_file(client: Client) -> None:
    job = await completed_job(client, results=[])
    export = (await client.post(f"{JOBS}/{job['jobId']}/exports")).json()
    assert export["rowCount"] == 0
    status, content, _ = await download(client, export["downloadUrl"])
    assert status == 200 and len(content) == export["fileSize"]
