"""The Node SDK as a user gets it: its `npm pack` tarball `npm install`ed into a scratch project
in a temporary directory, beside express from npm. There the page's Express example (compiled
from tests/seeds_node/receivers/servers/express.ts) takes real deliveries, and a script of the
page's client calls (createJobFromUrl, generateFromUrl, get) runs against the real api."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from harness.process import Process
from harness.stack import Stack
from tests.seeds_node.conftest import WEBHOOK_PATH
from tests.seeds_node.reports_api import complete_job, fail_job, job_delivery, reveal_secret
from tests.seeds_node.toolchain import RECEIVERS, node_env, package_version, run

CLIENT = """
import { Mappa } from "@mappa-ai/mappa-node";

const mappa = new Mappa({ apiKey: process.env.MAPPA_API_KEY, baseUrl: process.env.MAPPA_BASE_URL });
const job = {
  url: "https://example.com/interview.mp3",
  output: { template: "hiring_report" },
  target: { strategy: "dominant" },
};
const [step, arg] = process.argv.slice(2);
const out = (value) => console.log(JSON.stringify(value));
try {
  if (step === "create") {
    out(await mappa.reports.createJobFromUrl({ ...job, webhook: { url: arg } }));
  } else if (step === "generate") {
    out(await mappa.reports.generateFromUrl({ ...job, pollIntervalMs: 100, timeoutMs: 60_000 }));
  } else if (step === "get") {
    out(await mappa.reports.get(arg));
  }
} catch (err) {
  out({ error: err.name, status: err.status, code: err.code, jobId: err.jobId });
}
"""


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory, sdk_tarball: Path) -> Path:
    """A new project: `npm install` of the tarball and express (from npm's cache, which the
    receivers' `npm ci` filled), the page's Express example and the client script."""
    project = tmp_path_factory.mktemp("mappa-scratch")
    express = package_version(RECEIVERS, "express")
    package = {"name": "scratch", "private": True, "type": "commonjs"}
    (project / "package.json").write_text(json.dumps(package))
    run(["npm", "install", "--prefer-offline", str(sdk_tarball), f"express@{express}"], project)
    shutil.copy(RECEIVERS / ".build" / "servers" / "express.js", project / "express.js")
    (project / "client.mjs").write_text(CLIENT)
    return project


def client(project: Path, env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        ["node", "client.mjs", *args],
        cwd=project,
        env=node_env(**env),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_tarball_is_what_the_scratch_project_runs(scratch: Path) -> None:
    resolved = run(["node", "-p", 'require.resolve("@mappa-ai/mappa-node")'], scratch).strip()
    assert Path(resolved).is_relative_to(scratch / "node_modules"), resolved
    manifest = json.loads((scratch / "package.json").read_text())
    assert manifest["dependencies"]["@mappa-ai/mappa-node"].startswith("file:"), manifest
    installed = json.loads(
        (scratch / "node_modules" / "@mappa-ai" / "mappa-node" / "package.json").read_text()
    )
    assert installed.get("dependencies") is None  # nothing else came with it


@pytest.mark.e2e
async def test_seed_express_example_and_client_calls_in_a_scratch_project(
    scratch: Path,
    stack: Stack,
    api_client: httpx.AsyncClient,
    db_pool: asyncpg.Pool,
    start_receiver: Callable[..., Process],
) -> None:
    org = stack.create_org()
    secret = await reveal_secret(api_client, org)
    env = {"MAPPA_API_KEY": org["apiToken"], "MAPPA_BASE_URL": stack.api_url}
    node = start_receiver(
        "express",
        secret=secret,
        api_key=org["apiToken"],
        base_url=stack.api_url,
        argv=["node", str(scratch / "express.js")],
    )

    # createJobFromUrl with the page's webhook, then the report engine finishes the job.
    receipt = await asyncio.to_thread(client, scratch, env, "create", node.url(WEBHOOK_PATH))
    assert receipt["status"] == "queued" and receipt["jobId"], receipt
    report_id = await complete_job(api_client, org, receipt["jobId"], "# From the scratch project")
    delivered = await job_delivery(db_pool, receipt["jobId"], "SUCCEEDED")
    assert delivered["attempt_count"] == 1, node.log_tail()
    assert f"Report {report_id} ready!" in node.log_tail(), node.log_tail()

    # reports.get, as the page's report.completed handler does.
    report = await asyncio.to_thread(client, scratch, env, "get", report_id)
    assert report["id"] == report_id and report["markdown"] == "# From the scratch project"
    missing = await asyncio.to_thread(client, scratch, env, "get", "rpt_missing")
    assert missing == {"error": "ApiError", "status": 404, "code": "NOT_FOUND"}, missing

    # generateFromUrl waits while the job is queued and returns the report once it completes,
    # or throws the job's error once it fails.
    for outcome in ("completed", "failed"):
        waiting = asyncio.create_task(asyncio.to_thread(client, scratch, env, "generate"))
        job_id = await queued_job(db_pool, org["organizationId"])
        await asyncio.sleep(0.3)  # it polls a queued job meanwhile
        assert not waiting.done()
        if outcome == "completed":
            generated_id = await complete_job(api_client, org, job_id, "# Generated")
            generated = await asyncio.wait_for(waiting, 60)
            assert generated["id"] == generated_id and generated["markdown"] == "# Generated"
        else:
            await fail_job(api_client, org, job_id, "target_not_found", "no target")
            error = await asyncio.wait_for(waiting, 60)
            assert error == {"error": "JobFailedError", "code": "target_not_found", "jobId": job_id}


async def queued_job(pool: asyncpg.Pool, org_id: str, timeout: float = 30) -> str:
    """The org's one queued report job (generateFromUrl's, created in another process)."""
    for _ in range(int(timeout / 0.1)):
        rows = await pool.fetch(
            "SELECT id FROM report_jobs WHERE organization_id = $1 AND status = 'queued'", org_id
        )
        if rows:
            assert len(rows) == 1, rows
            return rows[0]["id"]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no queued report job of {org_id} within {timeout}s")
