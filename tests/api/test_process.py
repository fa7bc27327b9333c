"""`hookpost api` as a real process: it serves, reports ready, and SIGTERM exits 0."""

from __future__ import annotations

import json
import signal
import socket

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
        # bytes the HTTP parser refuses still get the §4 error shape, not uvicorn's text
        status, body = _raw(api.port, b"GET /api/v1/events/\x16 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 400"), status
        assert json.loads(body)["error"]["code"] == "BAD_REQUEST"
        api.signal(signal.SIGTERM)
        assert api.wait(timeout=30) == 0, api.log_tail()
    finally:
        api.stop()


def _raw(port: int, request: bytes) -> tuple[bytes, bytes]:
    """Send bytes as they are; the status line and the body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body
