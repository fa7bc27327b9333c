// Unit tests of the reports client against a FAKE api: a node:http server in this process
// that answers as SPEC §4F says. The real api is exercised by tests/seeds_node (pytest).
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, beforeEach, describe, it } from "node:test";

import { ApiError, AuthError, JobFailedError, Mappa, TimeoutError } from "../dist/index.js";

let server;
let baseUrl;
let seen = [];
let answer; // (req, body) => [status, json] | null (never answer)

before(async () => {
  server = createServer((req, res) => {
    let data = "";
    req.on("data", (chunk) => (data += chunk));
    req.on("end", () => {
      const body = data ? JSON.parse(data) : undefined;
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      const reply = answer(req, body);
      if (reply === null) return; // hang: the client's timeout must fire
      res.writeHead(reply[0], { "content-type": "application/json" });
      res.end(JSON.stringify(reply[1]));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${server.address().port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

beforeEach(() => {
  seen = [];
});

const REPORT = { id: "rep_1", jobId: "job_1", markdown: "# Report", createdAt: "2026-01-17T12:05:00Z" };
const params = {
  url: "https://example.com/call.mp3",
  output: { template: "sales_playbook" },
  webhook: { url: "https://yourapp.com/webhooks/mappa" },
  target: { strategy: "dominant" },
};

describe("reports", () => {
  it("createJobFromUrl POSTs the job with the API key, and returns the receipt", async () => {
    answer = () => [202, { jobId: "job_1", status: "queued" }];
    const mappa = new Mappa({ apiKey: "tok_123", baseUrl });
    const receipt = await mappa.reports.createJobFromUrl({ ...params, idempotencyKey: "k-1" });
    assert.deepEqual(receipt, { jobId: "job_1", status: "queued" });
    assert.equal(seen.length, 1);
    assert.equal(seen[0].method, "POST");
    assert.equal(seen[0].url, "/api/v1/reports/jobs");
    assert.equal(seen[0].headers.authorization, "Bearer tok_123");
    assert.equal(seen[0].headers["content-type"], "application/json");
    assert.equal(seen[0].headers["idempotency-key"], "k-1");
    assert.deepEqual(seen[0].body, params); // the key travels as a header, not in the body
  });

  it("get fetches a report by id (escaped in the path)", async () => {
    answer = () => [200, REPORT];
    const mappa = new Mappa({ apiKey: "t", baseUrl: `${baseUrl}/` });
    assert.deepEqual(await mappa.reports.get("rep_1"), REPORT);
    await mappa.reports.get("a/b");
    assert.deepEqual(seen.map((r) => r.url), ["/api/v1/reports/rep_1", "/api/v1/reports/a%2Fb"]);
  });

  it("generateFromUrl creates, polls until completed, then returns the report", async () => {
    let polls = 0;
    answer = (req) => {
      if (req.method === "POST") return [202, { jobId: "job_1", status: "queued" }];
      if (req.url === "/api/v1/reports/jobs/job_1") {
        polls += 1;
        return polls < 3 ? [200, { jobId: "job_1", status: "queued" }] : [200, { jobId: "job_1", status: "completed", reportId: "rep_1" }];
      }
      if (req.url === "/api/v1/reports/rep_1") return [200, REPORT];
      return [404, { error: { code: "NOT_FOUND", message: req.url } }];
    };
    const mappa = new Mappa({ apiKey: "t", baseUrl });
    const report = await mappa.reports.generateFromUrl({ ...params, pollIntervalMs: 10, timeoutMs: 5000 });
    assert.equal(report.markdown, "# Report");
    assert.equal(polls, 3);
    assert.equal(seen.at(-1).url, "/api/v1/reports/rep_1");
  });

  it("generateFromUrl throws JobFailedError with the job's error", async () => {
    answer = (req) =>
      req.method === "POST"
        ? [202, { jobId: "job_2", status: "queued" }]
        : [200, { jobId: "job_2", status: "failed", error: { code: "target_not_found", message: "Could not identify target speaker" } }];
    const mappa = new Mappa({ apiKey: "t", baseUrl });
    await assert.rejects(mappa.reports.generateFromUrl({ ...params, pollIntervalMs: 10 }), (err) => {
      assert.ok(err instanceof JobFailedError);
      assert.equal(err.code, "target_not_found");
      assert.equal(err.jobId, "job_2");
      return true;
    });
  });

  it("generateFromUrl gives up after its timeout", async () => {
    answer = (req) => (req.method === "POST" ? [202, { jobId: "job_3", status: "queued" }] : [200, { jobId: "job_3", status: "queued" }]);
    const mappa = new Mappa({ apiKey: "t", baseUrl });
    const started = Date.now();
    await assert.rejects(mappa.reports.generateFromUrl({ ...params, pollIntervalMs: 20, timeoutMs: 200 }), TimeoutError);
    const took = Date.now() - started;
    assert.ok(took >= 200 && took < 2000, `took ${took} ms`);
  });

  it("an AbortSignal stops a wait", async () => {
    answer = (req) => (req.method === "POST" ? [202, { jobId: "job_4", status: "queued" }] : [200, { jobId: "job_4", status: "queued" }]);
    const mappa = new Mappa({ apiKey: "t", baseUrl });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("shutting down")), 100);
    await assert.rejects(mappa.reports.generateFromUrl({ ...params, pollIntervalMs: 1000, signal: controller.signal }), /shutting down/);
  });

  it("a request with no answer times out per timeoutMs", async () => {
    answer = () => null;
    const mappa = new Mappa({ apiKey: "t", baseUrl, timeoutMs: 150 });
    await assert.rejects(mappa.reports.get("rep_1"), TimeoutError);
  });
});

describe("errors", () => {
  it("a §4 error body becomes ApiError; 401 and 403 AuthError", async () => {
    answer = () => [404, { error: { code: "NOT_FOUND", message: "no such report" } }];
    const mappa = new Mappa({ apiKey: "t", baseUrl });
    await assert.rejects(mappa.reports.get("nope"), (err) => {
      assert.ok(err instanceof ApiError && !(err instanceof AuthError));
      assert.equal(err.status, 404);
      assert.equal(err.code, "NOT_FOUND");
      assert.match(err.message, /no such report/);
      return true;
    });
    answer = () => [401, { error: { code: "UNAUTHORIZED", message: "bad token" } }];
    await assert.rejects(mappa.reports.get("x"), AuthError);
    answer = () => [400, { error: { code: "BAD_REQUEST", message: "url: not https" } }];
    await assert.rejects(mappa.reports.createJobFromUrl(params), (err) => err.status === 400 && err.code === "BAD_REQUEST");
  });

  it("without an apiKey the API is not called (webhooks still work)", async () => {
    answer = () => [200, REPORT];
    const mappa = new Mappa({ baseUrl });
    await assert.rejects(mappa.reports.get("rep_1"), AuthError);
    assert.equal(seen.length, 0);
  });

  it("baseUrl defaults to MAPPA_BASE_URL", async () => {
    answer = () => [200, REPORT];
    process.env.MAPPA_BASE_URL = baseUrl;
    try {
      await new Mappa({ apiKey: "t" }).reports.get("rep_1");
    } finally {
      delete process.env.MAPPA_BASE_URL;
    }
    assert.equal(seen.length, 1);
  });
});
