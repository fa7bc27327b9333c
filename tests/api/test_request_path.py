"""What every request pays for: the response counter, and no thread hop on the events path."""

from __future__ import annotations

import re
from pathlib import Path

import anyio.to_thread
import pytest
from prometheus_client import REGISTRY

from tests.api.conftest import Client

EVENTS = "/api/v1/events"


def responses(status_class: str) -> float:
    value = REGISTRY.get_sample_value(
        "hookpost_api_http_responses_total", {"status_class": status_class}
    )
    return value or 0.0


async def test_every_response_is_counted_by_status_class(client: Client) -> None:
    before = {c: responses(c) for c in ("2xx", "4xx")}
    for _ in range(3):
        accepted = await client.post(EVENTS, json={"type": "mapping.completed", "data": {}})
        assert accepted.status_code == 202
    refused = await client.http.post(EVENTS, json={"type": "mapping.completed", "data": {}})
    assert refused.status_code == 401  # no token: answered before the route ran
    missing = await client.get(f"{EVENTS}/evt_missing")
    assert missing.status_code == 404
    assert responses("2xx") - before["2xx"] == 3
    assert responses("4xx") - before["4xx"] == 2


async def test_the_events_path_never_hops_to_the_threadpool(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync dependency (FastAPI runs it in the threadpool) costs a thread hop per request."""
    await client.post(EVENTS, json={"type": "mapping.completed", "data": {}})  # warm
    hops: list[object] = []
    run_sync = anyio.to_thread.run_sync

    async def counting_run_sync(func: object, *args: object, **kwargs: object) -> object:
        hops.append(func)
        return await run_sync(func, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting_run_sync)
    response = await client.post(
        EVENTS,
        json={"type": "mapping.completed", "data": {"n": 1}},
        headers={"Idempotency-Key": "no-hop"},
    )
    assert response.status_code == 202
    assert hops == []


# Session state that would outlive a request on a pooled connection: the api's pool releases
# without asyncpg's reset query (services/api/app.py), so none of this may appear. (SQL here
# is written in upper case, as everywhere in hookpost.)
SESSION_STATE_SQL = re.compile(
    r"[\"']\s*(SET\s+(SESSION\s+)?[a-z_.]+\s*(=|TO)\s|RESET\s|(UN)?LISTEN\s|DECLARE\s)|"
    r"\bCREATE\s+TEMP|\b(pg_advisory_lock|pg_try_advisory_lock|set_config)\b|"
    r"\.cursor\(|add_listener\("
)


def test_the_api_leaves_no_session_state_on_pooled_connections() -> None:
    root = Path(__file__).resolve().parents[2] / "services" / "api"
    found = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if SESSION_STATE_SQL.search(line) and not line.lstrip().startswith("#")
    ]
    assert found == []
