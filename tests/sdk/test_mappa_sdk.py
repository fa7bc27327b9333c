"""libs.sdk.Mappa (seed 004's client in Python) on its own: verify_signature's keywords and
refusals, parse_event, and how API errors surface. Deliveries from the real stack are
verified in tests/e2e/test_report_jobs_e2e.py and tests/seeds/; here the signatures come from
libs.domain.signing, the sender's own signer."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from libs.domain.event_payloads import ReportCompletedData, ReportFailedData
from libs.domain.signing import sign_v1
from libs.sdk import Mappa, __version__
from libs.sdk.mappa import (
    MappaApiError,
    MappaError,
    WebhookPayloadError,
    WebhookVerificationError,
)

SECRET = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="
BODY = orjson.dumps(
    {
        "id": "evt_abc123",
        "type": "report.completed",
        "createdAt": "2026-01-17T12:05:00.000Z",
        "data": {"jobId": "cm5job123abc456", "reportId": "cm5report789xyz", "status": "completed"},
    }
).decode()


def signed(body: str = BODY, secrets: list[str] | None = None, at: int | None = None) -> dict:
    return {"mappa-signature": sign_v1(body.encode(), secrets or [SECRET], at)}


def verify(**kw: object) -> None:
    Mappa(api_key="k").webhooks.verify_signature(**kw)  # type: ignore[arg-type]


def test_a_genuine_delivery_verifies_with_the_pages_keywords() -> None:
    verify(payload=BODY, headers=signed(), secret=SECRET, tolerance_sec=300)
    verify(payload=BODY.encode(), headers=signed(), secret=SECRET)
    # Header names in any case, and Node's list-valued headers.
    verify(payload=BODY, headers={"Mappa-Signature": signed()["mappa-signature"]}, secret=SECRET)
    verify(payload=BODY, headers={"mappa-signature": [signed()["mappa-signature"]]}, secret=SECRET)
    # During a rotation window: two v1 signatures; either secret verifies, and a receiver
    # may hold both while switching.
    both = signed(secrets=["whsec_new", SECRET])
    verify(payload=BODY, headers=both, secret=SECRET)
    verify(payload=BODY, headers=both, secret="whsec_new")
    verify(payload=BODY, headers=signed(), secret=["whsec_other", SECRET])


@pytest.mark.parametrize(
    "case",
    ["missing header", "empty header", "tampered body", "wrong secret", "stale", "future", "junk"],
)
def test_it_raises_on_what_the_page_says(case: str) -> None:
    now = int(time.time())
    headers: dict = signed()
    payload, secret = BODY, SECRET
    if case == "missing header":
        headers = {"x-webhook-signature": headers["mappa-signature"]}
    elif case == "empty header":
        headers = {"mappa-signature": None}
    elif case == "tampered body":
        payload = BODY.replace("completed", "failed")
    elif case == "wrong secret":
        secret = SECRET + "x"
    elif case == "stale":
        headers = signed(at=now - 301)
    elif case == "future":
        headers = signed(at=now + 360)  # ahead by more than the tolerance, even on a slow run
    elif case == "junk":
        headers = {"mappa-signature": "t=abc,v1=zz"}
    with pytest.raises(WebhookVerificationError):
        verify(payload=payload, headers=headers, secret=secret, tolerance_sec=300)


def test_tolerance_is_the_callers() -> None:
    old = signed(at=int(time.time()) - 100)
    verify(payload=BODY, headers=old, secret=SECRET)  # default 300 s
    with pytest.raises(WebhookVerificationError):
        verify(payload=BODY, headers=old, secret=SECRET, tolerance_sec=60)


def test_parse_event_types_the_reports_events() -> None:
    webhooks = Mappa().webhooks
    event = webhooks.parse_event(BODY)
    assert event.id == "evt_abc123" and event.type == "report.completed"
    assert isinstance(event.data, ReportCompletedData)
    assert event.data.report_id == "cm5report789xyz" and event.data.job_id == "cm5job123abc456"
    failed = webhooks.parse_event(
        orjson.dumps(
            {
                "id": "evt_def456",
                "type": "report.failed",
                "createdAt": "2026-01-17T12:05:00.000Z",
                "data": {
                    "jobId": "cm5job123abc456",
                    "status": "failed",
                    "error": {
                        "code": "target_not_found",
                        "message": "Could not identify target speaker",
                    },
                },
            }
        )
    )
    assert isinstance(failed.data, ReportFailedData)
    assert failed.data.error.code == "target_not_found"
    unknown = webhooks.parse_event(
        '{"id": "evt_1", "type": "report.new", "createdAt": "2026-01-17T12:05:00Z",'
        ' "data": {"a": 1}}'
    )
    assert unknown.data == {"a": 1}
    for bad in ("nope", "[]", '{"test": true}', '{"id": "e", "type": "t", "data": {}}'):
        with pytest.raises(WebhookPayloadError):
            webhooks.parse_event(bad)
    with pytest.raises(WebhookPayloadError):  # report.completed without its reportId
        webhooks.parse_event(BODY.replace('"reportId":"cm5report789xyz",', ""))


def test_api_errors_surface_with_their_code() -> None:
    """A fake transport (unit test of the client's error handling only)."""

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer k"
        assert request.url.path == "/api/v1/reports/rpt_x"
        return httpx.Response(404, json={"error": {"code": "NOT_FOUND", "message": "no"}})

    with Mappa(api_key="k", base_url="http://h/", transport=httpx.MockTransport(answer)) as m:
        with pytest.raises(MappaApiError) as raised:
            m.reports.get("rpt_x")
    assert raised.value.status == 404 and raised.value.code == "NOT_FOUND"
    with pytest.raises(MappaError):
        Mappa().reports.get("rpt_x")  # no api key
    assert __version__
