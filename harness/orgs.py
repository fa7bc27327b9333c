"""Organizations made as an operator makes them: `hookpost orgs create NAME --plan PLAN`."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Mapping

from harness.process import HOOKPOST_BIN


def create_org(env: Mapping[str, str], name: str, plan: str = "PRO") -> dict[str, str]:
    """The new org's `organizationId` and `apiToken`."""
    done = subprocess.run(
        [str(HOOKPOST_BIN), "orgs", "create", name, "--plan", plan],
        env=dict(env),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"hookpost orgs create failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


async def create_orgs(env: Mapping[str, str], names: list[str]) -> dict[str, dict[str, str]]:
    """Several at once (each is a process start): name → org."""
    results = await asyncio.gather(*(asyncio.to_thread(create_org, env, n) for n in names))
    return dict(zip(names, results, strict=True))
