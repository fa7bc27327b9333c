/** Every error the SDK throws is a MappaError, so one `instanceof` catches them all. */
export class MappaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Why a webhook was refused; `code` is stable, the message is for people. */
export type WebhookVerificationCode =
  | "missing_header"
  | "malformed_header"
  | "timestamp_out_of_tolerance"
  | "invalid_signature"
  | "invalid_payload"
  | "missing_secret";

export class WebhookVerificationError extends MappaError {
  readonly code: WebhookVerificationCode;

  constructor(code: WebhookVerificationCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** A body that is not a Mappa webhook event (not JSON, or not the envelope's shape). */
export class WebhookPayloadError extends MappaError {}

/** A non-2xx answer of the API, with the `{"error": {"code", "message"}}` body it carried. */
export class ApiError extends MappaError {
  readonly status: number;
  readonly code: string;
  readonly body: unknown;

  constructor(status: number, code: string, message: string, body: unknown) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** 401 or 403: the API key is missing, wrong, or not allowed to do this. */
export class AuthError extends ApiError {}

/** `generateFromUrl` found its job failed: `code` and `message` are the job's error. */
export class JobFailedError extends MappaError {
  readonly jobId: string;
  readonly code: string;

  constructor(jobId: string, code: string, message: string) {
    super(`job ${jobId} failed: ${code}: ${message}`);
    this.jobId = jobId;
    this.code = code;
  }
}

/** A wait (`generateFromUrl`) or a single request ran past its timeout. */
export class TimeoutError extends MappaError {}
