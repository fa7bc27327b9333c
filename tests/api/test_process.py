"""`hookpost api` as a real process: it serves, reports ready, and SIGTERM exits 0."""

from __future__ import annotations

import signal

import httpx

from tests.support.stacks import api_process


def test_api_process_serves_and_exits_0_on_sigterm(
    test_env: dict[str, str], db_pool: object
) -> None:
    api = api_process(test_env).start()
    try:
        assert httpx.get(api.url("/healthz")).json() == {"status": "ok"}
        unauthenticated = httpx.get(api.url("/api/v1/webhook-subscriptions"))
        assert unauthenticated.status_code == 401
        api.signal(signal.SIGTERM)
        assert api.wait(timeout=30) == 0, api.log_tail()
    finally:
        api.stop()
