"""The Mappa client of seed 004 (door F), in Python: the page's surface in snake_case.

    from libs.sdk import Mappa

    mappa = Mappa(api_key=os.environ["MAPPA_API_KEY"], base_url="https://hookpost.example.com")
    receipt = mappa.reports.create_job_from_url(
        url="https://example.com/call.mp3",
        output={"template": "sales_playbook"},
        target={"strategy": "dominant"},
        webhook={"url": "https://yourapp.com/webhooks/mappa"},
    )

    # in the webhook handler, with the RAW body:
    mappa.webhooks.verify_signature(
        payload=raw_body, headers=request.headers, secret=os.environ["MAPPA_WEBHOOK_SECRET"],
        tolerance_sec=300,
    )                                        # raises WebhookVerificationError
    event = mappa.webhooks.parse_event(raw_body)
    if event.type == "report.completed":
        report = mappa.reports.get(event.data.report_id)

Verifying is libs.domain.signing's (the module the sender signs with); the other doors keep
their own verifiers in libs.sdk.webhooks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
import orjson
from pydantic import ValidationError

from libs.domain.event_payloads import EventData, ReportCompletedData, ReportFailedData
from libs.domain.event_types import EventType
from libs.domain.signing import (
    DEFAULT_TOLERANCE_S,
    MAPPA_SIGNATURE_HEADER,
    SignatureVerificationError,
    verify_v1,
)
from libs.domain.wire_model import WireModel

__all__ = [
    "Mappa",
    "MappaApiError",
    "MappaError",
    "MappaEvent",
    "Report",
    "ReportJob",
    "ReportJobFailed",
    "ReportJobReceipt",
    "WebhookPayloadError",
    "WebhookVerificationError",
]

API_PREFIX = "/api/v1"
HeaderValue = str | Sequence[str] | None


class MappaError(Exception):
    """Anything this client raises on purpose."""


class WebhookVerificationError(MappaError, SignatureVerificationError):
    """A missing `mappa-signature` header, a bad signature or a stale timestamp."""


class WebhookPayloadError(MappaError, ValueError):
    """The body is not a Mappa webhook event."""


class MappaApiError(MappaError):
    """The API answered an error (`{"error": {"code", "message"}}`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class ReportJobFailed(MappaError):
    """generate_from_url's job ended failed; `code` / `message` are the job's error."""

    def __init__(self, job_id: str, code: str, message: str) -> None:
        super().__init__(f"report job {job_id} failed: {code}: {message}")
        self.job_id, self.code, self.message = job_id, code, message


class ReportJobReceipt(WireModel):
    job_id: str
    status: str


class ReportJobError(WireModel):
    code: str
    message: str


class ReportJob(WireModel):
    job_id: str
    status: str  # queued | completed | failed
    report_id: str | None = None
    error: ReportJobError | None = None


class Report(WireModel):
    id: str
    job_id: str
    markdown: str
    created_at: datetime


class MappaEvent(WireModel):
    """`{id: "evt_…", type, createdAt, data}`: `id` is the same on every retry of an event."""

    id: str
    type: str
    created_at: datetime
    data: EventData | dict[str, Any]


_EVENT_DATA: dict[str, type[EventData]] = {
    EventType.REPORT_COMPLETED.value: ReportCompletedData,
    EventType.REPORT_FAILED.value: ReportFailedData,
}


def _header(headers: Mapping[str, HeaderValue], name: str) -> str | None:
    """A header by name in any case; the first value of a list (Node's shape)."""
    for key, value in headers.items():
        if key.lower() == name:
            if value is None or isinstance(value, str):
                return value
            return next(iter(value), None)
    return None


class Webhooks:
    def verify_signature(
        self,
        *,
        payload: str | bytes,
        headers: Mapping[str, HeaderValue],
        secret: str | Sequence[str],
        tolerance_sec: int = DEFAULT_TOLERANCE_S,
    ) -> None:
        """Check `mappa-signature: t=…,v1=…` over the RAW body; constant-time. Raises
        WebhookVerificationError on a missing header, a bad signature or a timestamp more
        than `tolerance_sec` from now. Pass a list of secrets while one is being rotated."""
        header = _header(headers, MAPPA_SIGNATURE_HEADER)
        if not header:
            raise WebhookVerificationError(f"no {MAPPA_SIGNATURE_HEADER} header")
        body = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        try:
            verify_v1(body, header, secret, tolerance_sec)
        except SignatureVerificationError as exc:
            raise WebhookVerificationError(str(exc)) from exc

    def parse_event(self, body: str | bytes) -> MappaEvent:
        """The event, `data` typed for report.completed / report.failed. Verify first."""
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise WebhookPayloadError(f"the body is not JSON: {exc}") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
            raise WebhookPayloadError("the body is not an event: {id, type, createdAt, data}")
        try:
            event = MappaEvent.model_validate({**raw, "data": {}})
            model = _EVENT_DATA.get(event.type)
            data = raw["data"] if model is None else model.model_validate(raw["data"])
        except ValidationError as exc:
            raise WebhookPayloadError(f"not a valid event: {exc}") from exc
        return event.model_copy(update={"data": data})


class Reports:
    def __init__(self, client: Mappa) -> None:
        self._client = client

    def create_job_from_url(
        self,
        *,
        url: str,
        output: Mapping[str, Any],
        target: Mapping[str, Any],
        webhook: Mapping[str, Any] | None = None,
    ) -> ReportJobReceipt:
        """Queue a report of `url`; returns at once with `job_id`. With `webhook={"url": …}`,
        that URL is told when the job completes or fails."""
        body: dict[str, Any] = {"url": url, "output": dict(output), "target": dict(target)}
        if webhook is not None:
            body["webhook"] = dict(webhook)
        return ReportJobReceipt.model_validate(self._client.request("POST", "/reports/jobs", body))

    def get_job(self, job_id: str) -> ReportJob:
        return ReportJob.model_validate(self._client.request("GET", f"/reports/jobs/{job_id}"))

    def get(self, report_id: str) -> Report:
        return Report.model_validate(self._client.request("GET", f"/reports/{report_id}"))

    def generate_from_url(
        self,
        *,
        url: str,
        output: Mapping[str, Any],
        target: Mapping[str, Any],
        timeout_sec: float = 600.0,
        poll_interval_sec: float = 2.0,
    ) -> Report:
        """Create a job, wait for it (polling), return its report. Raises ReportJobFailed
        when it fails and TimeoutError when it has no outcome within `timeout_sec`."""
        receipt = self.create_job_from_url(url=url, output=output, target=target)
        deadline = time.monotonic() + timeout_sec
        while True:
            job = self.get_job(receipt.job_id)
            if job.status == "completed" and job.report_id is not None:
                return self.get(job.report_id)
            if job.status == "failed":
                error = job.error or ReportJobError(code="unknown", message="")
                raise ReportJobFailed(job.job_id, error.code, error.message)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"report job {job.job_id} still {job.status}")
            time.sleep(min(poll_interval_sec, max(0.0, deadline - time.monotonic())))


class Mappa:
    """The client: `webhooks` (verify, parse) and `reports` (create, wait, get)."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str = "http://127.0.0.1:8000",
        *,
        timeout_sec: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(timeout=timeout_sec, transport=transport)
        self.webhooks = Webhooks()
        self.reports = Reports(self)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        if not self.api_key:
            raise MappaError("an api_key is needed to call the API")
        response = self._http.request(
            method,
            f"{self.base_url}{API_PREFIX}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        if response.is_success:
            return response.json()
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "HTTP_ERROR", response.text[:200]
        raise MappaApiError(response.status_code, code, message)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Mappa:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
