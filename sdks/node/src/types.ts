/** The wire shapes of report jobs and their webhooks (hookpost SPEC §4F, the seed page's names). */

export interface ReportOutput {
  template: string;
  [option: string]: unknown;
}

export interface ReportTarget {
  strategy: string;
  [option: string]: unknown;
}

export interface CreateJobFromUrlParams {
  /** Where the media to report on lives. */
  url: string;
  output: ReportOutput;
  target?: ReportTarget;
  /** Where `report.completed` / `report.failed` is POSTed, signed with `mappa-signature`. */
  webhook?: { url: string };
  /** Sent as `Idempotency-Key`: the same key never creates a second job. */
  idempotencyKey?: string;
}

export type JobStatus = "queued" | "completed" | "failed";

/** What creating a job answers (202). */
export interface JobReceipt {
  jobId: string;
  status: JobStatus;
}

export interface JobError {
  code: string;
  message: string;
}

export interface Job {
  jobId: string;
  status: JobStatus;
  reportId?: string | null;
  error?: JobError | null;
  [field: string]: unknown;
}

export interface Report {
  id: string;
  jobId: string;
  markdown: string;
  createdAt: string;
  [field: string]: unknown;
}

export interface WaitOptions {
  /** How long to wait for the job to finish, in all (default 10 minutes). */
  timeoutMs?: number;
  /** Between two looks at the job (default 1 s). */
  pollIntervalMs?: number;
  /** Stops the wait (the promise rejects with the signal's reason). */
  signal?: AbortSignal;
}

export type GenerateFromUrlParams = CreateJobFromUrlParams & WaitOptions;

export interface ReportCompletedEvent {
  id: string;
  type: "report.completed";
  createdAt: string;
  data: { jobId: string; reportId: string; status: "completed" };
}

export interface ReportFailedEvent {
  id: string;
  type: "report.failed";
  createdAt: string;
  data: { jobId: string; status: "failed"; error: JobError };
}

/** A webhook event; `type` narrows `data`. The `id` (`evt_…`) is the same on every retry. */
export type WebhookEvent = ReportCompletedEvent | ReportFailedEvent;

/** Header values as Node (`req.headers`), Express, Fastify or a fetch `Headers` give them. */
export type HeaderBag =
  | { get(name: string): string | null }
  | Record<string, string | string[] | undefined>;

export interface VerifySignatureParams {
  /** The raw request body, exactly as received: a string, a Buffer or bytes. A body a
   * framework already parsed as JSON (Fastify's default) is accepted too: see the README. */
  payload: string | Uint8Array | object;
  headers: HeaderBag;
  /** The webhook secret (Team Settings); several during a rotation, any one may match. */
  secret: string | readonly string[];
  /** Largest accepted distance between the signature's `t` and now, in seconds (default 300). */
  toleranceSec?: number;
}
