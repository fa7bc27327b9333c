// Unit tests of webhooks.verifySignature / parseEvent (node --test; no network).
import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { describe, it } from "node:test";

import { Mappa, WebhookPayloadError, WebhookVerificationError, signPayload } from "../dist/index.js";

const mappa = new Mappa({ apiKey: "unused" });
const SECRET = "whsec_test_secret";
const now = () => Math.floor(Date.now() / 1000);
const body = JSON.stringify({
  id: "evt_abc123",
  type: "report.completed",
  createdAt: "2026-01-17T12:05:00.000Z",
  data: { jobId: "cm5job123abc456", reportId: "cm5report789xyz", status: "completed" },
});

function headersFor(payload, { secret = SECRET, timestamp = now() } = {}) {
  return { "mappa-signature": signPayload({ payload, secret, timestamp }) };
}

async function refusal(params) {
  await assert.rejects(mappa.webhooks.verifySignature(params), WebhookVerificationError);
  try {
    await mappa.webhooks.verifySignature(params);
  } catch (err) {
    return err.code;
  }
}

// The page's "Manual verification (without SDK)", verbatim but for its type annotations.
function verifyWebhook(payload, signature, secret) {
  const [tPart, v1Part] = signature.split(",");
  const timestamp = tPart.split("=")[1];
  const receivedSig = v1Part.split("=")[1];
  const now = Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number.parseInt(timestamp)) > 300) {
    return false;
  }
  const signedPayload = `${timestamp}.${payload}`;
  const expectedSig = createHmac("sha256", secret).update(signedPayload).digest("hex");
  try {
    return timingSafeEqual(Buffer.from(receivedSig, "hex"), Buffer.from(expectedSig, "hex"));
  } catch {
    return false;
  }
}

describe("verifySignature accepts", () => {
  it("a genuine signature with headers as Node gives them", async () => {
    await mappa.webhooks.verifySignature({ payload: body, headers: headersFor(body), secret: SECRET, toleranceSec: 300 });
  });

  it("header names in any case, and a fetch Headers instance", async () => {
    const value = headersFor(body)["mappa-signature"];
    await mappa.webhooks.verifySignature({ payload: body, headers: { "Mappa-Signature": value }, secret: SECRET });
    await mappa.webhooks.verifySignature({ payload: body, headers: new Headers({ "MAPPA-SIGNATURE": value }), secret: SECRET });
  });

  it("a header given as an array (a repeated header)", async () => {
    const value = headersFor(body)["mappa-signature"];
    await mappa.webhooks.verifySignature({ payload: body, headers: { "mappa-signature": [value] }, secret: SECRET });
  });

  it("the body as a Buffer or bytes, and as JSON a framework already parsed", async () => {
    const headers = headersFor(body);
    await mappa.webhooks.verifySignature({ payload: Buffer.from(body), headers, secret: SECRET });
    await mappa.webhooks.verifySignature({ payload: new TextEncoder().encode(body), headers, secret: SECRET });
    await mappa.webhooks.verifySignature({ payload: JSON.parse(body), headers, secret: SECRET });
  });

  it("a body with non-ASCII text, signed over its UTF-8 bytes", async () => {
    const text = JSON.stringify({ id: "evt_1", type: "report.failed", createdAt: "x", data: { error: { code: "c", message: "Águila — 東京 ✓" } } });
    await mappa.webhooks.verifySignature({ payload: text, headers: headersFor(text), secret: SECRET });
    await mappa.webhooks.verifySignature({ payload: JSON.parse(text), headers: headersFor(text), secret: SECRET });
  });

  it("either signature of a rotation window, and any of several secrets", async () => {
    const t = now();
    const oldSig = signPayload({ payload: body, secret: "old", timestamp: t }).split(",")[1];
    const newSig = signPayload({ payload: body, secret: "new", timestamp: t }).split(",")[1];
    const headers = { "mappa-signature": `t=${t},${oldSig},${newSig}` };
    await mappa.webhooks.verifySignature({ payload: body, headers, secret: "old" });
    await mappa.webhooks.verifySignature({ payload: body, headers, secret: "new" });
    await mappa.webhooks.verifySignature({ payload: body, headers: headersFor(body, { secret: "b" }), secret: ["a", "b"] });
  });

  it("a timestamp just inside the tolerance, either way", async () => {
    await mappa.webhooks.verifySignature({ payload: body, headers: headersFor(body, { timestamp: now() - 290 }), secret: SECRET });
    await mappa.webhooks.verifySignature({ payload: body, headers: headersFor(body, { timestamp: now() + 290 }), secret: SECRET });
  });
});

describe("verifySignature refuses", () => {
  it("a missing header", async () => {
    assert.equal(await refusal({ payload: body, headers: {}, secret: SECRET }), "missing_header");
    assert.equal(await refusal({ payload: body, headers: new Headers(), secret: SECRET }), "missing_header");
    assert.equal(await refusal({ payload: body, headers: { "x-webhook-signature": "t=1,v1=00" }, secret: SECRET }), "missing_header");
  });

  it("a header without t or v1", async () => {
    for (const value of ["garbage", `t=${now()}`, "v1=abcd", `t=abc,v1=${"0".repeat(64)}`, `t=${now()},v1=zz`]) {
      assert.equal(await refusal({ payload: body, headers: { "mappa-signature": value }, secret: SECRET }), "malformed_header", value);
    }
  });

  it("a tampered body", async () => {
    const headers = headersFor(body);
    const tampered = body.replace("cm5report789xyz", "cm5report000evil");
    assert.equal(await refusal({ payload: tampered, headers, secret: SECRET }), "invalid_signature");
    assert.equal(await refusal({ payload: JSON.parse(tampered), headers, secret: SECRET }), "invalid_signature");
    assert.equal(await refusal({ payload: body + "\n", headers, secret: SECRET }), "invalid_signature");
  });

  it("the wrong secret, and a signature of the wrong length (no RangeError)", async () => {
    assert.equal(await refusal({ payload: body, headers: headersFor(body), secret: "whsec_other" }), "invalid_signature");
    const truncated = headersFor(body)["mappa-signature"].slice(0, -2);
    assert.equal(await refusal({ payload: body, headers: { "mappa-signature": truncated }, secret: SECRET }), "invalid_signature");
  });

  it("a signature whose timestamp was changed", async () => {
    const [, v1] = headersFor(body)["mappa-signature"].split(",");
    const headers = { "mappa-signature": `t=${now() - 1},${v1}` };
    assert.equal(await refusal({ payload: body, headers, secret: SECRET }), "invalid_signature");
  });

  it("a stale timestamp, and one from the future, past the tolerance", async () => {
    assert.equal(await refusal({ payload: body, headers: headersFor(body, { timestamp: now() - 301 }), secret: SECRET }), "timestamp_out_of_tolerance");
    assert.equal(await refusal({ payload: body, headers: headersFor(body, { timestamp: now() + 400 }), secret: SECRET }), "timestamp_out_of_tolerance");
    assert.equal(await refusal({ payload: body, headers: headersFor(body, { timestamp: now() - 11 }), secret: SECRET, toleranceSec: 10 }), "timestamp_out_of_tolerance");
  });

  it("no secret, and no body", async () => {
    assert.equal(await refusal({ payload: body, headers: headersFor(body), secret: "" }), "missing_secret");
    assert.equal(await refusal({ payload: body, headers: headersFor(body), secret: undefined }), "missing_secret");
    assert.equal(await refusal({ payload: undefined, headers: headersFor(body), secret: SECRET }), "invalid_payload");
  });

  it("by rejecting its promise, never by throwing synchronously", () => {
    const result = mappa.webhooks.verifySignature({ payload: body, headers: {}, secret: SECRET });
    assert.ok(result instanceof Promise);
    return assert.rejects(result, WebhookVerificationError);
  });
});

describe("the wire format", () => {
  it("matches an HMAC-SHA256 computed elsewhere (Python's hmac)", () => {
    const payload = '{"id":"evt_abc123","type":"report.completed"}';
    assert.equal(
      signPayload({ payload, secret: SECRET, timestamp: 1705401600 }),
      "t=1705401600,v1=1e1339342161d3d9c17645a0acfdc334d256c423c3a15bfcfe2fb97c1f4b7b21",
    );
  });

  it("is what the page's manual verification accepts", () => {
    const signature = headersFor(body)["mappa-signature"];
    assert.equal(verifyWebhook(body, signature, SECRET), true);
    assert.equal(verifyWebhook(body, signature, "other"), false);
  });
});

describe("parseEvent", () => {
  it("reads report.completed and report.failed, from a string, bytes or an object", () => {
    const event = mappa.webhooks.parseEvent(body);
    assert.equal(event.type, "report.completed");
    assert.equal(event.id, "evt_abc123");
    assert.equal(event.data.reportId, "cm5report789xyz");
    assert.deepEqual(mappa.webhooks.parseEvent(Buffer.from(body)), event);
    assert.deepEqual(mappa.webhooks.parseEvent(JSON.parse(body)), event);
    const failed = mappa.webhooks.parseEvent(JSON.stringify({
      id: "evt_def456", type: "report.failed", createdAt: "2026-01-17T12:05:00.000Z",
      data: { jobId: "j", status: "failed", error: { code: "target_not_found", message: "Could not identify target speaker" } },
    }));
    assert.equal(failed.data.error.code, "target_not_found");
  });

  it("passes event types it does not know through", () => {
    const event = mappa.webhooks.parseEvent('{"id":"evt_1","type":"report.archived","createdAt":"x","data":{}}');
    assert.equal(event.type, "report.archived");
  });

  it("refuses what is not JSON or not an event", () => {
    for (const bad of ["not json", "[]", "null", '{"id":"evt_1","type":"x","createdAt":"y"}', '{"type":"x","createdAt":"y","data":{}}']) {
      assert.throws(() => mappa.webhooks.parseEvent(bad), WebhookPayloadError, bad);
    }
  });
});
