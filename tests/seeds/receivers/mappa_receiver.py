"""Seed 004's "Create a webhook endpoint" receiver, in Python with the Python SDK: the page's
Express handler step for step (verify the raw body, parse, handle report.completed by
fetching the report and report.failed, skip an event.id already processed, 200 "OK"; any
error → 401 "Invalid signature"). Only the language, the import and the environment differ.

Run: PORT=… MAPPA_API_KEY=… MAPPA_BASE_URL=… MAPPA_WEBHOOK_SECRET=… python -m this_module
Each handled event is printed as a JSON line on stdout (what the tests read).
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from libs.sdk import Mappa

mappa = Mappa(api_key=os.environ["MAPPA_API_KEY"], base_url=os.environ["MAPPA_BASE_URL"])
processed_events: set[str] = set()


def handle(body: str, headers: dict[str, str]) -> tuple[int, str]:
    try:
        # 1. Verify the signature
        mappa.webhooks.verify_signature(
            payload=body,
            headers=headers,
            secret=os.environ["MAPPA_WEBHOOK_SECRET"],
            tolerance_sec=300,  # Allow 5 min clock skew
        )
        # 2. Parse the event
        event = mappa.webhooks.parse_event(body)
        # Skip if already processed (the page's "Handle idempotent retries")
        if event.id in processed_events:
            return 200, "Already processed"
        # 3. Handle the event
        if event.type == "report.completed":
            report = mappa.reports.get(event.data.report_id)  # type: ignore[union-attr]
            print(json.dumps({"id": event.id, "type": event.type, "markdown": report.markdown}))
        if event.type == "report.failed":
            error = event.data.error  # type: ignore[union-attr]
            print(json.dumps({"id": event.id, "type": event.type, "code": error.code}))
        processed_events.add(event.id)
        # 4. Acknowledge receipt
        return 200, "OK"
    except Exception as err:
        print("Webhook verification failed:", err, file=sys.stderr)
        return 401, "Invalid signature"
    finally:
        sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        status, text = handle(raw, dict(self.headers.items()))
        self._answer(status, text)

    def do_GET(self) -> None:  # readiness, for the test harness
        self._answer(200, "ready")

    def _answer(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:  # quiet: stdout carries the events
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
