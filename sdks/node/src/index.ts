import { Http } from "./http";
import { Reports } from "./reports";
import { Webhooks } from "./webhooks";

export interface MappaOptions {
  /** The organization's API token (`Authorization: Bearer …`); only webhooks work without one. */
  apiKey?: string;
  /** Where the API is; default `MAPPA_BASE_URL` from the environment, else http://127.0.0.1:8000. */
  baseUrl?: string;
  /** Per HTTP request (default 30 s); a wait's own limit is generateFromUrl's `timeoutMs`. */
  timeoutMs?: number;
  /** A fetch of one's own (default: the global fetch of Node 18+). */
  fetch?: typeof fetch;
}

export const DEFAULT_BASE_URL = "http://127.0.0.1:8000";

export class Mappa {
  readonly reports: Reports;
  readonly webhooks: Webhooks;

  constructor(options: MappaOptions = {}) {
    const http = new Http({
      apiKey: options.apiKey,
      baseUrl: options.baseUrl ?? process.env.MAPPA_BASE_URL ?? DEFAULT_BASE_URL,
      timeoutMs: options.timeoutMs ?? 30_000,
      fetch: options.fetch ?? globalThis.fetch,
    });
    this.reports = new Reports(http);
    this.webhooks = new Webhooks();
  }
}

export {
  ApiError,
  AuthError,
  JobFailedError,
  MappaError,
  TimeoutError,
  WebhookPayloadError,
  WebhookVerificationError,
} from "./errors";
export type { WebhookVerificationCode } from "./errors";
export { Reports } from "./reports";
export type * from "./types";
export {
  DEFAULT_TOLERANCE_SEC,
  SIGNATURE_HEADER,
  Webhooks,
  parseEvent,
  signPayload,
  verifySignatureSync,
} from "./webhooks";
