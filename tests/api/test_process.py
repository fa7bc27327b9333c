"""`hookpost api` as a real process: it serves, reports ready, and SIGTERM exits 0."""

from __future__ import annotations

import signal

import httpx

from tests.support.services import ServiceProcess, free_port, service_env


def test_api_process_serves_and_exits_0_on_sigterm(
    test_env: dict[str, str], db_pool: object
) -> None:
    port = free_port()
    api = ServiceProcess("api", ["api", "--port", str(port)], service_env(test_env), port)
    api.start()
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        unauthenticated = httpx.get(f"http://127.0.0.1:{port}/api/v1/webhook-subscriptions")
        assert unauthenticated.status_code == 401
        api.signal(signal.SIGTERM)
        assert api.wait(timeout=30) == 0, api.log_tail()
    finally:
        api.stop()
