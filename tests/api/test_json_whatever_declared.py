"""A JSON object body is read as JSON whatever Content-Type it declares (seed 003's curl
sends `-d '{…}'` with no -H, which curl declares as application/x-www-form-urlencoded);
what is not JSON is still refused in the §4 shape."""

from __future__ import annotations

import orjson
import pytest

from tests.api.conftest import Client, assert_error

HOOKS = "/api/v1/export-webhooks"
BODY = orjson.dumps({"url": "http://127.0.0.1:9/exports", "active": True})


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/octet-stream",
        "multipart/form-data; boundary=x",
        "application/json; charset=utf-8",
        "application/vnd.api+json",
    ],
)
async def test_a_json_object_is_json_whatever_it_declares(
    client: Client, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await client.post(HOOKS, content=b"  \n" + BODY, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["url"] == "http://127.0.0.1:9/exports"


@pytest.mark.parametrize(
    "body",
    [b"url=http://127.0.0.1:9/exports&active=true", b"{not json", b"[1, 2]", b"", b"null"],
)
async def test_what_is_not_a_json_object_is_still_refused(client: Client, body: bytes) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert_error(await client.post(HOOKS, content=body, headers=headers), 400, "BAD_REQUEST")
