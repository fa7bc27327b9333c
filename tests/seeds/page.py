"""The seed pages (tests/seeds/pages: verbatim copies of ../shared/seeds) as the tests read
them: their curl commands, run by the real curl binary through bash with only the host, the
token and the page's own placeholders substituted, and the JSON examples they show."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAGES = Path(__file__).resolve().parent / "pages"
API_HOST = "https://api.mapping.travel"
# Where the pages send webhooks: the user's own server, here the test's receiver.
RECEIVER_HOSTS = (
    "https://your-server.example.com",
    "https://yourapp.com",
    "https://internal.acme.com",
)
TOKENS = ("<your-token>", "<token>", "mt_...")
IDS = ("{id}", "<id>")


def text(name: str) -> str:
    return (PAGES / name).read_text(encoding="utf-8")


def curl_commands(page: str) -> list[str]:
    """Every curl command of the page, continuation lines and multi-line quotes included."""
    lines = page.splitlines()
    found: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("curl "):
            block = [lines[i]]
            while i + 1 < len(lines) and (
                block[-1].rstrip().endswith("\\") or "\n".join(block).count("'") % 2 == 1
            ):
                i += 1
                block.append(lines[i])
            found.append("\n".join(block))
        i += 1
    return found


def json_examples(page: str) -> list[Any]:
    """Every JSON document the page shows (blocks whose first line starts with `{`); the
    JavaScript object literals among them are not JSON and are left out."""
    lines = page.splitlines()
    found: list[Any] = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("{"):
            depth, block = 0, []
            for j in range(i, len(lines)):
                block.append(lines[j])
                depth += lines[j].count("{") - lines[j].count("}")
                if depth <= 0:
                    break
            try:
                found.append(json.loads("\n".join(block)))
                i = j
            except json.JSONDecodeError:
                pass
        i += 1
    return found


@dataclass(frozen=True)
class CurlResult:
    status: int
    body: str
    command: str  # as run

    def json(self) -> Any:
        return json.loads(self.body)


def substitute(
    command: str, *, api: str, token: str, receiver: str, resource_id: str | None = None
) -> str:
    """The page's command with the host, the token and its placeholders replaced: nothing
    else of the page's text changes."""
    out = command.replace(API_HOST, api)
    for host in RECEIVER_HOSTS:
        out = out.replace(host, receiver)
    for placeholder in TOKENS:
        out = out.replace(placeholder, token)
    if resource_id is not None:
        for placeholder in IDS:
            out = out.replace(placeholder, resource_id)
    return out


def run_curl(command: str, **values: str | None) -> CurlResult:
    """Run the substituted command with bash and the real curl; its status and body."""
    curl = shutil.which("curl")
    assert curl, "curl is not installed: `make test` installs it (scripts/ensure-tools.sh)"
    ready = substitute(command, **values)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "body"
        # Options may come after the page's arguments: curl reads them wherever they are.
        full = f"{ready} -sS -o {out} -w '%{{http_code}}'"
        done = subprocess.run(
            ["bash", "-c", full], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"curl failed ({done.returncode}): {done.stderr}\n{full}"
        body = out.read_text() if out.exists() else ""
    return CurlResult(int(done.stdout.strip()), body, ready)


ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$")


def same_shape(example: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """The page example's fields that `actual` lacks (extra fields are allowed)."""
    return sorted(set(example) - set(actual))
