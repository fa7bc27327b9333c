import { createHmac, timingSafeEqual } from "node:crypto";

import { WebhookPayloadError, WebhookVerificationError } from "./errors";
import type { HeaderBag, VerifySignatureParams, WebhookEvent } from "./types";

/** The header every Mappa webhook carries: `t=<unix seconds>,v1=<hex HMAC-SHA256>`. */
export const SIGNATURE_HEADER = "mappa-signature";
export const DEFAULT_TOLERANCE_SEC = 300;

function headerValue(headers: HeaderBag, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === "function") {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  }
  // A plain object: Node lower-cases names, a hand-built object may not.
  for (const [key, value] of Object.entries(headers as Record<string, unknown>)) {
    if (key.toLowerCase() !== name) continue;
    if (Array.isArray(value)) return value.join(",");
    if (typeof value === "string") return value;
  }
  return undefined;
}

interface ParsedHeader {
  timestamp: number;
  signatures: Buffer[];
}

function parseHeader(value: string): ParsedHeader {
  let timestamp: number | undefined;
  const signatures: Buffer[] = [];
  for (const part of value.split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim();
    const val = part.slice(eq + 1).trim();
    if (key === "t" && /^\d+$/.test(val)) timestamp = Number(val);
    // Several v1 during a secret's rotation window; anything but hex can never match.
    if (key === "v1" && /^[0-9a-fA-F]+$/.test(val) && val.length % 2 === 0) {
      signatures.push(Buffer.from(val, "hex"));
    }
  }
  if (timestamp === undefined || signatures.length === 0) {
    throw new WebhookVerificationError(
      "malformed_header",
      `${SIGNATURE_HEADER} must look like t=<unix seconds>,v1=<hex>`,
    );
  }
  return { timestamp, signatures };
}

function payloadBytes(payload: VerifySignatureParams["payload"]): Buffer {
  if (typeof payload === "string") return Buffer.from(payload, "utf8");
  if (payload instanceof Uint8Array) return Buffer.from(payload);
  if (payload !== null && typeof payload === "object") {
    // A framework parsed the JSON body already (Fastify does by default). Mappa sends
    // compact JSON of strings, so JSON.stringify gives back the bytes that were signed;
    // a body that was altered cannot come back to them.
    return Buffer.from(JSON.stringify(payload), "utf8");
  }
  throw new WebhookVerificationError(
    "invalid_payload",
    "payload must be the raw request body (a string or a Buffer)",
  );
}

function hmac(secret: string, timestamp: number, body: Buffer): Buffer {
  return createHmac("sha256", secret).update(`${timestamp}.`).update(body).digest();
}

/** Throws WebhookVerificationError unless `headers` carry a fresh, valid signature of `payload`. */
export function verifySignatureSync(params: VerifySignatureParams): void {
  // `process.env.MAPPA_WEBHOOK_SECRET!` is undefined when the variable is unset: say so.
  const given: unknown = params.secret;
  const secrets = (Array.isArray(given) ? given : [given]).filter(
    (s): s is string => typeof s === "string" && s.length > 0,
  );
  if (secrets.length === 0) {
    throw new WebhookVerificationError("missing_secret", "no webhook secret was given");
  }
  const raw = headerValue(params.headers ?? {}, SIGNATURE_HEADER);
  if (raw === undefined || raw === "") {
    throw new WebhookVerificationError("missing_header", `no ${SIGNATURE_HEADER} header`);
  }
  const { timestamp, signatures } = parseHeader(raw);
  const body = payloadBytes(params.payload);
  // Every secret against every signature, without stopping early: the time taken says
  // nothing about which comparison came closest.
  let matched = false;
  for (const secret of secrets) {
    const expected = hmac(secret, timestamp, body);
    for (const candidate of signatures) {
      if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) {
        matched = true;
      }
    }
  }
  if (!matched) {
    throw new WebhookVerificationError("invalid_signature", "signature does not match the payload");
  }
  // Checked after the signature, so a stale error always means a genuine but old (replayed
  // or long-delayed) request.
  const tolerance = params.toleranceSec ?? DEFAULT_TOLERANCE_SEC;
  const now = Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > tolerance) {
    throw new WebhookVerificationError(
      "timestamp_out_of_tolerance",
      `signature timestamp ${timestamp} is more than ${tolerance}s from now (${now})`,
    );
  }
}

/** The `mappa-signature` value for `payload`, as Mappa signs it: for tests of a receiver. */
export function signPayload(params: {
  payload: string | Uint8Array;
  secret: string;
  timestamp?: number;
}): string {
  const timestamp = params.timestamp ?? Math.floor(Date.now() / 1000);
  const body = payloadBytes(params.payload);
  return `t=${timestamp},v1=${hmac(params.secret, timestamp, body).toString("hex")}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The event in a webhook body (a string, bytes, or JSON a framework already parsed). */
export function parseEvent(body: string | Uint8Array | object): WebhookEvent {
  let value: unknown = body;
  if (typeof body === "string" || body instanceof Uint8Array) {
    const text = typeof body === "string" ? body : Buffer.from(body).toString("utf8");
    try {
      value = JSON.parse(text);
    } catch {
      throw new WebhookPayloadError("webhook body is not JSON");
    }
  }
  if (
    !isObject(value) ||
    typeof value.id !== "string" ||
    typeof value.type !== "string" ||
    typeof value.createdAt !== "string" ||
    !isObject(value.data)
  ) {
    throw new WebhookPayloadError("webhook body is not a Mappa event {id, type, createdAt, data}");
  }
  // Types this SDK does not know yet come through as they are: new events must not break
  // a receiver that ignores them.
  return value as unknown as WebhookEvent;
}

/** `mappa.webhooks`: the seed page's surface. */
export class Webhooks {
  /** Resolves when the signature is valid and fresh; rejects with WebhookVerificationError. */
  async verifySignature(params: VerifySignatureParams): Promise<void> {
    verifySignatureSync(params);
  }

  parseEvent(body: string | Uint8Array | object): WebhookEvent {
    return parseEvent(body);
  }

  sign(params: { payload: string | Uint8Array; secret: string; timestamp?: number }): string {
    return signPayload(params);
  }
}
