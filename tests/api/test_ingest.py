"""POST /api/v1/events (events/ingest.py) answers, request by request, what FastAPI's own
route answered before ingest became one plain route (tests/api/ingest_answers.json), and is
served without FastAPI's route machinery."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest

from libs.domain.plans import Plan
from libs.infra.settings import Settings
from tests.api.conftest import running_api

EVENTS = "/api/v1/events"
EVENT = {"type": "mapping.completed", "data": {"mappingJobId": "job_1"}}
EVENT_ID = re.compile(rb"evt_[0-9A-Za-z]+")
EXPECTED = json.loads((Path(__file__).with_name("ingest_answers.json")).read_text())


def solve_dependencies_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests FastAPI solved dependencies for (its route handler did)."""
    calls: list[str] = []
    solve = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["request"].url.path)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return calls


async def test_post_events_is_served_without_fastapis_route_machinery(
    settings: Settings, make_org: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await make_org(Plan.FREE)
    headers = {"Authorization": f"Bearer {org.apiToken}"}
    calls = solve_dependencies_calls(monkeypatch)
    async with running_api(settings) as http:
        accepted = await http.post(EVENTS, json=EVENT, headers=headers)
        assert accepted.status_code == 202, accepted.text
        refused = await http.post(EVENTS, content=b'{"type": 1}', headers=headers)
        assert refused.status_code == 400
        assert calls == []  # neither went through FastAPI's route handler
        event_id = accepted.json()["eventId"]
        # The rest of the prefix is FastAPI's.
        assert (await http.get(f"{EVENTS}/{event_id}", headers=headers)).status_code == 200
        assert calls == [f"{EVENTS}/{event_id}"]


async def test_the_operation_is_in_the_openapi_document(settings: Settings) -> None:
    async with running_api(settings) as http:
        document = (await http.get("/openapi.json")).json()
    operation = document["paths"][EVENTS]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    accepted = operation["responses"]["202"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/EventIn") and accepted.endswith("/EventAccepted")
    assert document["components"]["schemas"]["EventIn"]["required"] == ["type"]
    assert [p["name"] for p in operation["parameters"]] == ["Idempotency-Key"]
    assert "get" in document["paths"][f"{EVENTS}/{{event_id}}"]


TEXT_PLAIN = {"Content-Type": "text/plain"}
JSON = {"Content-Type": "application/json"}


def _requests(token: str, key_prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, httpx request arguments) of what both paths must answer the same."""
    auth = {"Authorization": f"Bearer {token}"}
    yield "accepted", {"json": EVENT, "headers": auth}
    yield "no token", {"json": EVENT}
    yield "bad token", {"json": EVENT, "headers": {"Authorization": "Bearer hpk_nope"}}
    yield "no token, bad body", {"content": b"{", "headers": JSON}
    yield "too big, declared", {"content": b"x" * (1024 * 1024 + 1), "headers": auth | JSON}

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"type": "mapping.completed", "data": {"x": "'
        yield b"y" * (1024 * 1024)
        yield b'"}}'

    yield "too big, chunked", {"content": chunks(), "headers": auth | JSON}
    for name, content in [
        ("empty body", b""),
        ("truncated JSON", b'{"type": "mapping.completed"'),
        ("not UTF-8", b"\xff\xfe{}"),
        ("deep nesting", b"[" * 50_000),
        ("array", b"[]"),
        ("string", b'"mapping.completed"'),
        ("null", b"null"),
        ("no type", b'{"data": {}}'),
        ("type not a string", b'{"type": 1, "data": {}}'),
        ("data a list", b'{"type": "mapping.completed", "data": []}'),
        ("data null", b'{"type": "mapping.completed", "data": null}'),
        ("unknown type", b'{"type": "no.such", "data": {}}'),
        ("synthetic type", b'{"type": "webhook.test", "data": {}}'),
        ("NUL in data", b'{"type": "mapping.completed", "data": {"a": "\\u0000"}}'),
        ("NaN in data", b'{"type": "mapping.completed", "data": {"a": NaN}}'),
        ("big integer", b'{"type": "mapping.completed", "data": {"a": 1' + b"0" * 30 + b"}}"),
        ("extra field", b'{"type": "mapping.completed", "data": {}, "x": 1}'),
        ("BOM", b'\xef\xbb\xbf{"type": "mapping.completed", "data": {}}'),
    ]:
        yield name, {"content": content, "headers": auth | JSON}
    yield "no content type", {"content": b'{"type": "mapping.completed"}', "headers": auth}
    yield "text/plain", {"content": b'{"type": "mapping.completed"}', "headers": auth | TEXT_PLAIN}
    charset = {"Content-Type": "application/json; charset=utf-8"}
    yield "json with charset", {"json": EVENT, "headers": auth | charset}
    for name, key in [("key too long", "k" * 256), ("empty key", ""), ("NUL key", "a\x00")]:
        yield name, {"json": EVENT, "headers": auth | {"Idempotency-Key": key}}
    key = {"Idempotency-Key": f"{key_prefix}-1"}
    yield "first with key", {"json": EVENT, "headers": auth | key}
    yield "repeat with key", {"json": EVENT, "headers": auth | key}
    other = {"type": "mapping.completed", "data": {"other": True}}
    yield "conflict with key", {"json": other, "headers": auth | key}


def _answer(response: httpx.Response) -> dict[str, Any]:
    """Status, body and headers, with event ids (new on each run) masked."""
    return {
        "status": response.status_code,
        "body": EVENT_ID.sub(b"evt_*", response.content).decode("utf-8", "replace"),
        "headers": [[k.decode(), v.decode()] for k, v in response.headers.raw],
    }


async def test_every_request_is_answered_as_before(settings: Settings, make_org: Callable) -> None:
    org = await make_org(Plan.FREE)
    key_prefix = uuid.uuid4().hex
    async with running_api(settings) as http:
        answers = {
            name: _answer(await http.post(EVENTS, **kwargs))
            for name, kwargs in _requests(org.apiToken, key_prefix)
        }
    for name, expected in EXPECTED["answers"].items():
        assert answers[name] == expected, name
    assert answers.keys() == EXPECTED["answers"].keys()
    # The cases are the ones meant (not, say, all 401s).
    statuses = {name: answer["status"] for name, answer in answers.items()}
    assert statuses["accepted"] == statuses["repeat with key"] == 202
    assert statuses["bad token"] == statuses["no token, bad body"] == 401
    assert statuses["too big, declared"] == statuses["too big, chunked"] == 413
    assert statuses["NaN in data"] == statuses["BOM"] == statuses["json with charset"] == 202
    assert statuses["deep nesting"] == statuses["unknown type"] == 400
    assert statuses["conflict with key"] == 409
    assert statuses["no content type"] == statuses["text/plain"] == 202


async def test_rate_limit_tokens_are_spent_as_a_fastapi_route_spends_them(
    settings: Settings, make_org: Callable
) -> None:
    """A body of the wrong shape or an unknown type spends a token (a FastAPI route solves
    its dependencies before it refuses the body); a body that is not JSON does not."""
    limited = settings.model_copy(update={"events_rate_per_s": 0.001, "events_rate_burst": 3})
    org = await make_org(Plan.FREE)
    auth = {"Authorization": f"Bearer {org.apiToken}"}
    async with running_api(limited) as http:
        not_json = await http.post(EVENTS, content=b"{", headers=auth | JSON)
        answers = [
            await http.post(EVENTS, json=body, headers=auth)
            for body in ({"type": 1}, {"type": "no.such"}, EVENT, EVENT)
        ]
    assert not_json.status_code == 400
    assert [_answer(a) for a in answers] == EXPECTED["rate_limited"]
    assert [a.status_code for a in answers] == [400, 400, 202, 429]
