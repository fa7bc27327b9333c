"""Fastify's receiver on the page hands verifySignature the body Fastify already parsed (an
object, not the raw string): the SDK re-serializes it with JSON.stringify. That verifies only if
JSON.stringify gives back the exact bytes hookpost signed. Here hookpost's own serializer for
door F (build_report_envelope) writes envelopes with the strings a job's error may carry
(quotes, backslashes, control characters, U+2028, emoji, CJK, HTML), and the SDK, run by node,
must accept each as parsed JSON with its real signature, and refuse it with one byte changed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from libs.domain.envelope import build_report_envelope
from tests.seeds_node.reports_api import mappa_signature
from tests.seeds_node.toolchain import SDK, run, sdk_built

MESSAGES = [
    "Could not identify target speaker",
    'quotes " and \\ backslashes \\" and /slashes/',
    "new\nline\ttab\rreturn \x00 \x01 \x1f \x7f control",
    "line separators \u2028 \u2029 and BOM \ufeff",
    "Águila — 東京 ✓ 🎉 𝄞 (outside the BMP)",
    "<script>alert('x')</script> & &amp; <b>",
    "",
]

CHECK = """
const { verifySignatureSync } = require(process.argv[1]);
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
const results = cases.map(({ body, signature, secret }) => {
  const verdict = (payload) => {
    try {
      verifySignatureSync({ payload, headers: { "mappa-signature": signature }, secret });
      return "ok";
    } catch (err) {
      return err.code;
    }
  };
  const parsed = JSON.parse(body);
  return {
    same: JSON.stringify(parsed) === body,
    raw: verdict(body),
    parsed: verdict(parsed),
    tampered: verdict(JSON.parse(body.replace("rjob_", "rjoX_"))),
  };
});
console.log(JSON.stringify(results));
"""


def test_the_sdk_verifies_parsed_json_of_every_report_envelope() -> None:
    sdk_built()
    secret, now = "whsec_parsed_body", int(datetime.now(UTC).timestamp())
    created = datetime.now(UTC)
    cases = []
    for message in MESSAGES:
        data = {"jobId": "rjob_01", "status": "failed", "error": {"code": "c", "message": message}}
        body = build_report_envelope("evt_01", "report.failed", created, data)
        text = body.decode()
        cases.append(
            {"body": text, "signature": mappa_signature(body, secret, now), "secret": secret}
        )
    out = run(["node", "-e", CHECK, str(SDK / "dist" / "index.js")], SDK, input=json.dumps(cases))
    results = json.loads(out)
    for message, result in zip(MESSAGES, results, strict=True):
        assert result == {
            "same": True,
            "raw": "ok",
            "parsed": "ok",
            "tampered": "invalid_signature",
        }, (
            message,
            result,
        )
