"""`hookpost listen`: a local receiver that verifies each delivery and prints it readably.

Like `stripe listen`, it lets a developer watch real, signed deliveries without exposing a
public URL (run the platform with HOOKPOST_ENV=dev so 127.0.0.1 is a permitted target).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from aiohttp import web

from libs.sdk.webhooks import WebhookVerificationError, detect_scheme, verify_signature


def describe_delivery(
    body: bytes, headers: dict[str, str], secrets: Sequence[str], tolerance_s: int
) -> tuple[bool, str]:
    """(verified, human-readable block) for one received request."""
    try:
        verify_signature(body, headers, secrets, tolerance_s=tolerance_s)
        verdict, verified = f"signature OK ({detect_scheme(headers).value})", True
    except WebhookVerificationError as exc:
        verdict, verified = f"signature REJECTED ({exc})", False
    try:
        envelope = json.loads(body)
        pretty = json.dumps(envelope, indent=2, ensure_ascii=False)
    except ValueError:
        envelope, pretty = {}, body[:2000].decode("utf-8", errors="replace")
    now = datetime.now(UTC).strftime("%H:%M:%S")
    title = (
        f"[{now}] {headers.get('X-Webhook-Event', envelope.get('type', '?'))}"
        # seed 004's envelope has no eventId: its `id` is the event's
        f"  event={envelope.get('eventId', envelope.get('id', '?'))}"
        f"  delivery={headers.get('X-Webhook-Delivery', envelope.get('id', '?'))}  {verdict}"
    )
    return verified, f"{title}\n{pretty}\n"


def build_app(
    secrets: Sequence[str], tolerance_s: int = 300, out: TextIO = sys.stdout
) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        verified, block = describe_delivery(body, dict(request.headers), secrets, tolerance_s)
        out.write(block)
        out.flush()
        # A receiver that cannot verify must say so, so the sender retries and logs it.
        return web.json_response({"verified": verified}, status=200 if verified else 400)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", receive)
    return app


def listen(host: str, port: int, secrets: Sequence[str], tolerance_s: int = 300) -> None:
    print(f"hookpost listen: verifying deliveries on http://{host}:{port}/ (Ctrl-C stops)")
    sys.stdout.flush()
    web.run_app(build_app(secrets, tolerance_s), host=host, port=port, print=None)
