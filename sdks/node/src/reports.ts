import { JobFailedError, TimeoutError } from "./errors";
import type { Http } from "./http";
import type {
  CreateJobFromUrlParams,
  GenerateFromUrlParams,
  Job,
  JobReceipt,
  Report,
  WaitOptions,
} from "./types";

const JOBS = "/api/v1/reports/jobs";
const DEFAULT_WAIT_MS = 10 * 60_000;
const DEFAULT_POLL_MS = 1_000;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** `mappa.reports`: report jobs from a media URL, and the reports they make. */
export class Reports {
  constructor(private readonly http: Http) {}

  /** Creates a job and returns at once (202); the webhook, if any, says when it is done. */
  async createJobFromUrl(params: CreateJobFromUrlParams): Promise<JobReceipt> {
    const { idempotencyKey, ...job } = params;
    const headers = idempotencyKey ? { "Idempotency-Key": idempotencyKey } : undefined;
    return this.http.request<JobReceipt>("POST", JOBS, { body: job, headers });
  }

  /** A job's state: queued, completed (with its reportId) or failed (with its error). */
  async getJob(jobId: string): Promise<Job> {
    return this.http.request<Job>("GET", `${JOBS}/${encodeURIComponent(jobId)}`);
  }

  /** A finished report (`report.markdown`). */
  async get(reportId: string): Promise<Report> {
    return this.http.request<Report>("GET", `/api/v1/reports/${encodeURIComponent(reportId)}`);
  }

  /** Polls a job until it finishes: its report, JobFailedError, or TimeoutError. */
  async wait(jobId: string, options: WaitOptions = {}): Promise<Report> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_MS;
    const pollMs = options.pollIntervalMs ?? DEFAULT_POLL_MS;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const job = await this.getJob(jobId);
      if (job.status === "completed" && job.reportId) return this.get(job.reportId);
      if (job.status === "failed") {
        const error = job.error ?? { code: "unknown", message: "no error given" };
        throw new JobFailedError(jobId, error.code, error.message);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new TimeoutError(`job ${jobId} still ${job.status} after ${timeoutMs} ms`);
      }
      await sleep(Math.min(pollMs, left), options.signal);
    }
  }

  /** Creates a job, then waits for its report (blocks: prefer createJobFromUrl + a webhook). */
  async generateFromUrl(params: GenerateFromUrlParams): Promise<Report> {
    const { timeoutMs, pollIntervalMs, signal, ...create } = params;
    const receipt = await this.createJobFromUrl(create);
    return this.wait(receipt.jobId, { timeoutMs, pollIntervalMs, signal });
  }
}
