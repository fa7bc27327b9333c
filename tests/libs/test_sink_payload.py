"""Agent sinks' payload and authentication, checked against independent computations."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest

from libs.delivery.payloads import UnsendablePayload, request_body
from libs.delivery.signatures import SigningKeys, signature_headers
from libs.domain.signing import (
    SignatureVerificationError,
    SinkAuthScheme,
    sign_mt,
    sink_authorization,
    verify_mt,
)
from libs.domain.sink_payload import SinkPayload, build_sink_body, results_ref
from libs.infra.crypto import encrypt
from tests.support.factories import MAPPING_RESULTS as RESULTS
from tests.support.factories import delivery_task, sender_delivery_row

BODY = b'{"jobId":"job_1","results":[]}'
COMPLETED = datetime(2026, 5, 25, 12, 34, 56, tzinfo=UTC)


def test_mt_signature_is_hmac_sha256_hex_of_the_raw_body() -> None:
    expected = hmac.new(b"k3y", BODY, hashlib.sha256).hexdigest()
    assert sign_mt(BODY, "k3y") == f"sha256={expected}"
    verify_mt(BODY, f"sha256={expected}", "k3y")
    verify_mt(BODY, f"sha256={expected}", ["other", "k3y"])
    with pytest.raises(SignatureVerificationError):
        verify_mt(BODY + b" ", f"sha256={expected}", "k3y")
    with pytest.raises(SignatureVerificationError):
        verify_mt(BODY, f"sha256={expected}", "wrong")
    with pytest.raises(SignatureVerificationError):
        verify_mt(BODY, expected, "k3y")  # the sha256= prefix is part of the scheme


def test_sink_authorization_headers() -> None:
    assert sink_authorization(SinkAuthScheme.BEARER, "tok_1") == "Bearer tok_1"
    basic = sink_authorization(SinkAuthScheme.BASIC, "ingest:p@ss:word")
    assert basic == "Basic " + base64.b64encode(b"ingest:p@ss:word").decode()
    with pytest.raises(ValueError):
        sink_authorization(SinkAuthScheme.HMAC_SHA256, "k")


@pytest.mark.parametrize(
    ("scheme", "header", "value"),
    [
        ("mt-hmac-sha256", "X-MT-Signature", sign_mt(BODY, "k3y")),
        ("bearer", "Authorization", "Bearer k3y"),
        ("basic", "Authorization", "Basic " + base64.b64encode(b"k3y").decode()),
    ],
)
def test_sender_signs_sinks_by_scheme(scheme: str, header: str, value: str) -> None:
    assert signature_headers(SigningKeys(scheme, ["k3y"]), BODY, "del_1", "evt_1", 1) == {
        header: value
    }


def test_sink_body_has_the_seed_shape_and_the_full_results() -> None:
    body = build_sink_body(
        "job_1",
        "agt_1",
        "ws_1",
        COMPLETED,
        {"total": 2, "matched": 1, "unmatched": 1},
        orjson.dumps(RESULTS).decode(),
        10 * 1024 * 1024,
    )
    parsed = orjson.loads(body)
    assert parsed == {
        "jobId": "job_1",
        "agentId": "agt_1",
        "workspaceId": "ws_1",
        "completedAt": "2026-05-25T12:34:56Z",
        "stats": {"total": 2, "matched": 1, "unmatched": 1},
        "results": RESULTS,
    }
    model = SinkPayload.model_validate_json(body)
    assert model.results[0].reference_hotel_id == "ref_1" and model.results_truncated is None


def test_over_the_cap_the_results_are_referenced_not_cut() -> None:
    big = [{"partnerRowId": f"row_{i}", "referenceHotelId": None} for i in range(2000)]
    body = build_sink_body(
        "job_1", "agt_1", "ws_1", COMPLETED, None, orjson.dumps(big).decode(), 4096
    )
    parsed = orjson.loads(body)
    assert len(body) <= 4096
    assert parsed["results"] == [] and parsed["resultsTruncated"] is True
    assert parsed["resultsRef"] == results_ref("agt_1", "job_1")
    assert parsed["resultsRef"] == "/api/v1/agents/agt_1/jobs/job_1/results"


ROW = sender_delivery_row(
    kind="AGENT_SINK",
    url_enc=encrypt("https://sink.example.com/in"),
    url_masked="https://sink.example.com/in",
    signature_scheme="mt-hmac-sha256",
    secret_enc=encrypt("k3y"),
    agent_id="agt_1",
    workspace_id="ws_1",
    job_id="job_1",
    job_completed_at=COMPLETED,
    job_stats={"total": 2, "matched": 1, "unmatched": 1},
    job_results_json=orjson.dumps(RESULTS).decode(),
)
TASK = delivery_task(endpoint_id="ds_1", event_created_at=COMPLETED, data={"mappingJobId": "job_1"})


def test_request_body_by_door() -> None:
    sink = orjson.loads(request_body(TASK, ROW, "del_1", 1 << 20))
    assert sink["jobId"] == "job_1" and sink["results"] == RESULTS
    envelope = orjson.loads(
        request_body(
            TASK, replace(ROW, endpoint=replace(ROW.endpoint, kind="DESTINATION")), "del_1", 1 << 20
        )
    )
    assert envelope["data"] == {"mappingJobId": "job_1"} and envelope["id"] == "del_1"
    synthetic = {"jobId": "job_x", "agentId": "agt_1", "results": []}
    test_task = TASK.model_copy(update={"type": "webhook.test", "data": {"sinkPayload": synthetic}})
    assert orjson.loads(request_body(test_task, ROW, "del_1", 1 << 20)) == synthetic
    with pytest.raises(UnsendablePayload):
        request_body(TASK.model_copy(update={"type": "webhook.test", "data": {}}), ROW, "d", 1)
    with pytest.raises(UnsendablePayload):
        request_body(TASK, replace(ROW, job_id=None), "del_1", 1 << 20)
