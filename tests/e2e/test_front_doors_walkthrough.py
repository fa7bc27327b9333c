"""docs/front-doors.md, run block by block against real services and a real receiver.

Each `<!-- step: NAME -->` block is cut out of the page and run by bash in one shell session
(variables carry over, as they do for a reader), then the test checks what reached the
receiver: one completed job fans out to all five front doors.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import shutil
from pathlib import Path

import stripe

from harness.receiver import Receiver
from harness.stack import Stack
from libs.sdk import Mappa

DOC = Path(__file__).resolve().parents[2] / "docs" / "front-doors.md"
STEP = re.compile(r"<!-- step: ([\w-]+) -->\s*```sh\n(.*?)```", re.DOTALL)
SINK_SECRET = "a-32-byte-secret-from-your-vault"


def test_curl_and_jq_are_installed() -> None:
    """`make test` installs them (scripts/ensure-tools.sh): a missing one fails, never skips."""
    assert shutil.which("curl") and shutil.which("jq"), "install curl and jq (make tools)"


def steps() -> list[tuple[str, str]]:
    found = STEP.findall(DOC.read_text())
    assert [name for name, _ in found] == [
        "subscription",
        "destination",
        "export-webhook",
        "agent-sink",
        "job",
        "export-and-fail",
        "report-job",
        "batch",
        "watch",
    ]
    return found


async def run_page(env: dict[str, str], workdir: Path) -> str:
    script = "set -euo pipefail\n" + "\n".join(
        f"echo '### {name}'\n{code}" for name, code in steps()
    )
    shell = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        script,
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(shell.communicate(), timeout=120)
    text = output.decode()
    assert shell.returncode == 0, f"the walkthrough stopped:\n{text}"
    return text


async def test_every_step_of_the_walkthrough_happens(
    stack: Stack, receiver: Receiver, tmp_path: Path
) -> None:
    org = stack.create_org("PRO_MAX")
    env = {
        "PATH": "/usr/bin:/bin",
        "API": stack.api_url,
        "TOKEN": org["apiToken"],
        "RECEIVER": receiver.url(""),
    }
    output = await run_page(env, tmp_path)
    subscription = json.loads((tmp_path / "subscription.json").read_text())
    destination = json.loads((tmp_path / "destination.json").read_text())

    # The subscription's test, then the completed job, then the failed one.
    got = await receiver.wait_for("/subscription", 3, timeout=60)
    events = sorted(json.loads(r.body)["type"] for r in got)
    assert events == ["mapping.completed", "mapping.failed", "webhook.test"]
    for request in got:
        stripe.WebhookSignature.verify_header(
            request.body.decode(),
            request.headers["X-Webhook-Signature"],
            subscription["signingSecret"],
            tolerance=300,
        )

    # The destination's rotated secret: its delivery carries two signatures, the old one too.
    [to_destination] = await receiver.wait_for("/destination", 1, timeout=60)
    assert to_destination.headers["X-Webhook-Signature"].count("v1=") == 2
    stripe.WebhookSignature.verify_header(
        to_destination.body.decode(),
        to_destination.headers["X-Webhook-Signature"],
        destination["signingSecret"],
        tolerance=300,
    )

    # Two export.ready: the automatic one and the manual export; the URL token intact.
    exports = await receiver.wait_for("/exports", 2, timeout=60)
    job_id = json.loads((tmp_path / "job.json").read_text())["jobId"]
    for request in exports:
        assert request.query == "secret=abc123"
        ready = json.loads(request.body)
        assert ready["type"] == "export.ready"
        assert ready["data"]["mappingJobId"] == job_id and ready["data"]["rowCount"] == 2
        assert ready["data"]["format"] == "CSV"

    # The sink: the /test push and the job's results, both signed with the sink secret.
    pushes = await receiver.wait_for("/sink", 2, timeout=60)
    for request in pushes:
        expected = hmac.new(SINK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["X-MT-Signature"] == f"sha256={expected}"
    job_push = next(json.loads(r.body) for r in pushes if json.loads(r.body)["jobId"] == job_id)
    assert job_push["stats"] == {"total": 2, "matched": 1, "unmatched": 1}
    assert [row["partnerRowId"] for row in job_push["results"]] == ["row_1", "row_2"]

    # The jobs' own URLs, signed with the org webhook secret.
    [to_job] = await receiver.wait_for("/job", 1, timeout=60)
    assert json.loads(to_job.body)["type"] == "mapping.completed"
    [to_failed] = await receiver.wait_for("/failed-job", 1, timeout=60)
    assert json.loads(to_failed.body)["data"]["error"]["code"] == "target_not_found"

    # The report job's own URL: seed 004's envelope, signed with the revealed org secret.
    [to_report] = await receiver.wait_for("/mappa", 1, timeout=60)
    envelope = json.loads(to_report.body)
    assert envelope["type"] == "report.completed" and envelope["id"].startswith("evt_")
    assert (
        envelope["data"]["jobId"] == json.loads((tmp_path / "report-job.json").read_text())["jobId"]
    )
    Mappa().webhooks.verify_signature(
        payload=to_report.body,
        headers=to_report.headers,
        secret=(tmp_path / "mappa-secret.txt").read_text().strip(),
    )
    assert "# Sales playbook" in output

    # The batch: each item answered on its own, the bad one alone refused.
    assert "0 202\n1 202\n2 400\n" in output

    # The page's own "watching" step printed the recorded attempts.
    assert "### watch" in output
