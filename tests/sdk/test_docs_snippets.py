"""docs/verifying-signatures.md's code, and the Python SDK, run against REAL deliveries.

A module fixture creates delivery destinations on the running stack (v1 and Standard
Webhooks), rotates their secrets with a grace window and captures what a real receiver got:
single-signature and two-signature deliveries. Each snippet is cut out of the markdown by
its `<!-- snippet: NAME -->` marker, so the page and the tests cannot drift apart; the
Python ones are executed here, the Node ones by /usr/bin/node, the Go one by `go run` (`make test`
installs Go: scripts/ensure-tools.sh; without it the test fails saying so).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.receiver import ReceivedRequest, Receiver
from harness.stack import Stack
from libs.domain.event_payloads import MappingCompletedData, WebhookTestData
from libs.sdk.webhooks import (
    WebhookEvent,
    WebhookPayloadError,
    WebhookVerificationError,
    parse_event,
    verify_signature,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "verifying-signatures.md"
DESTS = "/api/v1/delivery-destinations"
WRONG_SECRET = "whsec_" + base64.b64encode(b"w" * 32).decode()
STALE_AFTER_S = 2.0  # the stale cases use tolerance 1 s on deliveries at least this old


def snippet(name: str) -> str:
    """The code of the fenced block right after `<!-- snippet: NAME ... -->`."""
    text = DOC.read_text()
    match = re.search(
        rf"<!-- snippet: {re.escape(name)}[ (][^>]*-->\s*```\w+\n(.*?)```", text, re.DOTALL
    )
    assert match, f"no snippet {name!r} in {DOC}"
    return match.group(1)


@dataclass
class Captured:
    request: ReceivedRequest
    secrets: dict[str, str]  # "old", "new" (when rotated)

    @property
    def headers(self) -> dict[str, str]:
        return self.request.headers

    def header(self, name: str) -> str:
        return {k.lower(): v for k, v in self.headers.items()}[name.lower()]


@dataclass
class Deliveries:
    v1: Captured  # one v1= signature
    v1_rotated: Captured  # two v1= signatures: old and new secret
    sw: Captured  # Standard Webhooks, one signature
    sw_rotated: Captured  # Standard Webhooks, two space-separated signatures
    test_event: Captured  # a webhook.test from POST /{id}/test


async def _capture(stack: Stack) -> Deliveries:
    receiver = await Receiver().start()
    try:
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as client:
            org = stack.create_org()
            auth = {"Authorization": f"Bearer {org['apiToken']}"}

            async def destination(path: str, scheme: str) -> dict:
                response = await client.post(
                    DESTS,
                    headers=auth,
                    json={
                        "type": "WEBHOOK",
                        "webhookUrl": receiver.script(path, [200]),
                        "events": ["mapping.completed"],
                        "signatureScheme": scheme,
                    },
                )
                assert response.status_code == 201, response.text
                return response.json()

            async def rotate(dest: dict) -> str:
                response = await client.post(
                    f"{DESTS}/{dest['id']}/rotate-secret",
                    headers=auth,
                    json={"gracePeriodSeconds": 120},
                )
                assert response.status_code == 200, response.text
                return response.json()["signingSecret"]

            async def fire(n: int) -> None:
                data = {"mappingJobId": f"job_{n}", "status": "COMPLETED", "rowCount": 40 + n}
                response = await client.post(
                    "/api/v1/events",
                    headers=auth,
                    json={"type": "mapping.completed", "data": data},
                )
                assert response.status_code == 202, response.text

            v1_dest = await destination("/v1", "v1")
            sw_dest = await destination("/sw", "standard-webhooks")
            await fire(1)
            [v1_first] = await receiver.wait_for("/v1", 1)
            [sw_first] = await receiver.wait_for("/sw", 1)
            v1_new, sw_new = await rotate(v1_dest), await rotate(sw_dest)
            await fire(2)
            v1_second = (await receiver.wait_for("/v1", 2))[1]
            sw_second = (await receiver.wait_for("/sw", 2))[1]
            response = await client.post(f"{DESTS}/{v1_dest['id']}/test", headers=auth)
            assert response.status_code == 202, response.text
            test_request = (await receiver.wait_for("/v1", 3))[2]
    finally:
        await receiver.stop()
    v1_old, sw_old = v1_dest["signingSecret"], sw_dest["signingSecret"]
    # The stale cases need deliveries older than STALE_AFTER_S.
    await asyncio.sleep(max(0.0, v1_first.received_at + STALE_AFTER_S + 0.1 - time.time()))
    return Deliveries(
        v1=Captured(v1_first, {"old": v1_old}),
        v1_rotated=Captured(v1_second, {"old": v1_old, "new": v1_new}),
        sw=Captured(sw_first, {"old": sw_old}),
        sw_rotated=Captured(sw_second, {"old": sw_old, "new": sw_new}),
        test_event=Captured(test_request, {"old": v1_new}),
    )


@pytest.fixture(scope="module")
async def deliveries(stack: Stack) -> AsyncIterator[Deliveries]:
    yield await _capture(stack)


def test_the_captured_deliveries_are_what_the_cases_assume(deliveries: Deliveries) -> None:
    assert deliveries.v1.header("X-Webhook-Signature").count("v1=") == 1
    assert deliveries.v1_rotated.header("X-Webhook-Signature").count("v1=") == 2
    assert len(deliveries.sw.header("webhook-signature").split(" ")) == 1
    assert len(deliveries.sw_rotated.header("webhook-signature").split(" ")) == 2
    assert "webhook-signature" not in {k.lower() for k in deliveries.v1.headers}
    assert time.time() - deliveries.v1.request.received_at > STALE_AFTER_S


# ------------------------------------------------------------------ cases for every language


@dataclass
class Case:
    name: str
    body: bytes
    headers: dict[str, str]
    secrets: list[str]
    tolerance: int
    expected: bool

    def as_json(self, signature_header: str) -> dict[str, Any]:
        return {
            "body": base64.b64encode(self.body).decode(),
            "header": {k.lower(): v for k, v in self.headers.items()}[signature_header.lower()],
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "secrets": self.secrets,
            "tolerance": self.tolerance,
        }


def cases(single: Captured, rotated: Captured) -> list[Case]:
    body, headers = single.request.body, single.headers
    old, new = rotated.secrets["old"], rotated.secrets["new"]
    tampered = body.replace(b'"rowCount":41', b'"rowCount":42')
    assert tampered != body
    return [
        Case("valid", body, headers, [single.secrets["old"]], 300, True),
        Case("wrong secret", body, headers, [WRONG_SECRET], 300, False),
        Case("tampered body", tampered, headers, [single.secrets["old"]], 300, False),
        Case("stale", body, headers, [single.secrets["old"]], 1, False),
        Case("rotated, old secret", rotated.request.body, rotated.headers, [old], 300, True),
        Case("rotated, new secret", rotated.request.body, rotated.headers, [new], 300, True),
        Case(
            "rotated, wrong then new",
            rotated.request.body,
            rotated.headers,
            [WRONG_SECRET, new],
            300,
            True,
        ),
        Case("rotated, wrong", rotated.request.body, rotated.headers, [WRONG_SECRET], 300, False),
    ]


def assert_results(all_cases: list[Case], results: list[bool]) -> None:
    assert len(results) == len(all_cases)
    wrong = [c.name for c, got in zip(all_cases, results, strict=True) if got is not c.expected]
    assert not wrong, f"wrong verdicts for: {wrong}"


# ------------------------------------------------------------------------------ Python


def test_python_snippet_verifies_real_deliveries(deliveries: Deliveries) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(snippet("python"), str(DOC), "exec"), namespace)
    verify_webhook = namespace["verify_webhook"]
    all_cases = cases(deliveries.v1, deliveries.v1_rotated)
    results = [
        verify_webhook(c.body, c.as_json("X-Webhook-Signature")["header"], c.secrets, c.tolerance)
        for c in all_cases
    ]
    assert_results(all_cases, results)


def test_python_sdk_snippet_handles_real_deliveries(
    deliveries: Deliveries, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(snippet("python-sdk"), str(DOC), "exec"), namespace)
    handle = namespace["handle_webhook"]
    for captured in (deliveries.v1, deliveries.sw):
        request = captured.request
        assert handle(request.body, request.headers, [captured.secrets["old"]]) == 200
        assert handle(request.body, request.headers, [WRONG_SECRET]) == 401
        tampered = request.body.replace(b'"rowCount":41', b'"rowCount":42')
        assert handle(tampered, request.headers, [captured.secrets["old"]]) == 401
    printed = capsys.readouterr().out
    assert printed.count("job job_1: 41 rows") == 2


@pytest.mark.parametrize(("single", "rotated"), [("v1", "v1_rotated"), ("sw", "sw_rotated")])
def test_sdk_verify_signature_detects_the_scheme(
    deliveries: Deliveries, single: str, rotated: str
) -> None:
    all_cases = cases(getattr(deliveries, single), getattr(deliveries, rotated))
    results = []
    for case in all_cases:
        try:
            verify_signature(case.body, case.headers, case.secrets, tolerance_s=case.tolerance)
            results.append(True)
        except WebhookVerificationError:
            results.append(False)
    assert_results(all_cases, results)


def test_sdk_errors_are_clear(deliveries: Deliveries) -> None:
    request = deliveries.sw.request
    secret = deliveries.sw.secrets["old"]
    with pytest.raises(WebhookVerificationError, match="no signature header"):
        verify_signature(request.body, {"Content-Type": "application/json"}, secret)
    without_id = {k: v for k, v in request.headers.items() if k.lower() != "webhook-id"}
    with pytest.raises(WebhookVerificationError, match="webhook-id"):
        verify_signature(request.body, without_id, secret)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_signature(request.body, request.headers, secret, tolerance_s=1)
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify_signature(request.body, request.headers, [WRONG_SECRET])
    # Header names are case-insensitive, the body may be given as text.
    upper = {k.upper(): v for k, v in request.headers.items()}
    assert verify_signature(request.body.decode(), upper, secret) == int(
        deliveries.sw.header("webhook-timestamp")
    )


def test_parse_event_types_the_data(deliveries: Deliveries) -> None:
    request = deliveries.v1.request
    event = parse_event(request.body)
    assert isinstance(event, WebhookEvent)
    envelope = json.loads(request.body)
    assert event.id == envelope["id"] == deliveries.v1.header("X-Webhook-Delivery")
    assert event.event_id == envelope["eventId"]
    assert event.type == "mapping.completed" and event.api_version == "2026-06-01"
    assert isinstance(event.data, MappingCompletedData)
    assert event.data.mapping_job_id == "job_1" and event.data.row_count == 41
    assert event.data.status == "COMPLETED"

    test_event = parse_event(deliveries.test_event.request.body)
    assert test_event.type == "webhook.test"
    assert isinstance(test_event.data, WebhookTestData)
    assert test_event.data.destination_id and test_event.data.destination_id.startswith("dest_")

    for bad in (b"not json", b"[]", b'{"id": "del_1"}', request.body.replace(b"job_1", b"")[:-1]):
        with pytest.raises(WebhookPayloadError):
            parse_event(bad)
    # data that does not fit its type is refused, clearly
    broken = json.dumps({**envelope, "data": {"mappingJobId": "job_1"}}).encode()
    with pytest.raises(WebhookPayloadError, match="rowCount"):
        parse_event(broken)
    # a type this SDK does not know keeps its data as a dict
    future = json.dumps({**envelope, "type": "mapping.archived", "data": {"x": 1}}).encode()
    assert parse_event(future).data == {"x": 1}


# -------------------------------------------------------------------------------- Node

NODE = shutil.which("node") or "/usr/bin/node"

NODE_HARNESS = """
const cases = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const results = cases.map((c) => {
  const body = Buffer.from(c.body, "base64");
  return %s;
});
process.stdout.write(JSON.stringify(results));
"""


def run_node(code: str, call: str, payload: list[dict], tmp_path: Path) -> list[bool]:
    script = tmp_path / "verify.js"
    script.write_text(code + NODE_HARNESS % call)
    out = subprocess.run(
        [NODE, str(script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize(
    ("name", "call", "signature_header", "single", "rotated"),
    [
        (
            "node",
            "verifyWebhook(body, c.header, c.secrets, c.tolerance)",
            "X-Webhook-Signature",
            "v1",
            "v1_rotated",
        ),
        (
            "node-standard-webhooks",
            "verifyStandardWebhook(body, c.headers, c.secrets, c.tolerance)",
            "webhook-signature",
            "sw",
            "sw_rotated",
        ),
    ],
)
def test_node_snippets_verify_real_deliveries(
    deliveries: Deliveries,
    tmp_path: Path,
    name: str,
    call: str,
    signature_header: str,
    single: str,
    rotated: str,
) -> None:
    all_cases = cases(getattr(deliveries, single), getattr(deliveries, rotated))
    payload = [c.as_json(signature_header) for c in all_cases]
    assert_results(all_cases, run_node(snippet(name), call, payload, tmp_path))


# ---------------------------------------------------------------------------------- Go

GO = shutil.which("go") or ("/usr/lib/go/bin/go" if Path("/usr/lib/go/bin/go").exists() else None)

GO_HARNESS = """package main

import (
\t"encoding/json"
\t"fmt"
\t"os"
\t"time"
)

type testCase struct {
\tBody      []byte   `json:"body"`
\tHeader    string   `json:"header"`
\tSecrets   []string `json:"secrets"`
\tTolerance int64    `json:"tolerance"`
}

func main() {
\tvar cases []testCase
\tif err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
\t\tpanic(err)
\t}
\tresults := make([]bool, len(cases))
\tfor i, c := range cases {
\t\ttolerance := time.Duration(c.Tolerance) * time.Second
\t\tresults[i] = VerifyWebhook(c.Body, c.Header, c.Secrets, tolerance) == nil
\t}
\tout, _ := json.Marshal(results)
\tfmt.Println(string(out))
}
"""


def test_go_snippet_verifies_real_deliveries(deliveries: Deliveries, tmp_path: Path) -> None:
    assert GO is not None
    code = re.sub(r"^package \w+", "package main", snippet("go"), count=1, flags=re.MULTILINE)
    (tmp_path / "go.mod").write_text("module verifytest\n\ngo 1.18\n")
    (tmp_path / "verify.go").write_text(code)
    (tmp_path / "main.go").write_text(GO_HARNESS)
    cache = ROOT / ".hookpost" / "go-cache"
    env = {
        **os.environ,
        "GOCACHE": str(cache),
        "GOPATH": str(tmp_path / "gopath"),
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
    }
    all_cases = cases(deliveries.v1, deliveries.v1_rotated)
    out = subprocess.run(
        [GO, "run", "."],
        cwd=tmp_path,
        env=env,
        input=json.dumps([c.as_json("X-Webhook-Signature") for c in all_cases]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert_results(all_cases, json.loads(out.stdout))
