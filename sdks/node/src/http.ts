import { ApiError, AuthError, TimeoutError } from "./errors";

export interface HttpOptions {
  apiKey?: string;
  baseUrl: string;
  timeoutMs: number;
  fetch: typeof fetch;
}

interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** One JSON request to the API: Bearer auth, a per-request timeout, §4 errors as ApiError. */
export class Http {
  constructor(private readonly options: HttpOptions) {}

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    if (!this.options.apiKey) {
      throw new AuthError(401, "UNAUTHORIZED", "no apiKey was given to new Mappa()", null);
    }
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    const signal = opts.signal ? either(opts.signal, timeout) : timeout;
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.options.apiKey}`,
      Accept: "application/json",
      ...opts.headers,
    };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await this.options.fetch(this.options.baseUrl.replace(/\/+$/, "") + path, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal,
      });
    } catch (err) {
      if (timeout.aborted && !opts.signal?.aborted) {
        throw new TimeoutError(`${method} ${path}: no answer within ${this.options.timeoutMs} ms`);
      }
      throw err;
    }
    const text = await response.text();
    let body: unknown = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    if (!response.ok) throw apiError(response.status, body);
    return body as T;
  }
}

/** Aborted when either is (AbortSignal.any, which Node 18 lacks). */
function either(a: AbortSignal, b: AbortSignal): AbortSignal {
  const controller = new AbortController();
  for (const signal of [a, b]) {
    if (signal.aborted) {
      controller.abort(signal.reason);
      break;
    }
    signal.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
  }
  return controller.signal;
}

function apiError(status: number, body: unknown): ApiError {
  // SPEC §4: {"error": {"code", "message", ...}}
  const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = typeof error?.code === "string" ? error.code : `HTTP_${status}`;
  const message = typeof error?.message === "string" ? error.message : String(body ?? "");
  const Kind = status === 401 || status === 403 ? AuthError : ApiError;
  return new Kind(status, code, message, body);
}
