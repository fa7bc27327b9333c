"""The receivers run by these tests are the seed page's own code: each file, line for line (the
page lost its indentation, so lines are compared stripped), is the page's block but for the
lines marked `// hookpost:` (the port: the environment). Fails when the page or a file drifts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.seeds.page import PAGES
from tests.seeds_node.toolchain import RECEIVERS, ROOT

# The page as the repository keeps it (tests/seeds checks the copy against ../shared/seeds).
SEED = PAGES / "004-job-webhooks-and-sdk.txt"

# receiver file → (the page's first line of the block, the heading after it, the page's lines
# that the file's `// hookpost:` lines stand for)
BLOCKS: dict[str, tuple[str, str, list[str]]] = {
    "servers/express.ts": (
        'import express from "express";',
        "2. Add webhook to job",
        ["app.listen(3000);"],
    ),
    "app/webhooks/mappa/route.ts": (
        'import { NextRequest, NextResponse } from "next/server";',
        "Fastify",
        [],
    ),
    "servers/fastify.ts": ('import Fastify from "fastify";', "Production best practices", []),
}


def normalized(lines: list[str]) -> list[str]:
    return [line.strip() for line in lines if line.strip()]


def seed_block(first: str, heading: str) -> list[str]:
    lines = SEED.read_text().splitlines()
    start = lines.index(first)
    if first.startswith("import { NextRequest"):  # the page imports Mappa first there
        start -= 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(heading))
    return normalized(lines[start:end])


def receiver_code(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    body = lines[next(i for i, line in enumerate(lines) if line.startswith("import ")) :]
    return normalized([line for line in body if "// hookpost:" not in line])


@pytest.mark.parametrize("name", list(BLOCKS))
def test_receiver_is_the_seed_page_block(name: str) -> None:
    first, heading, replaced = BLOCKS[name]
    page = [line for line in seed_block(first, heading) if line not in replaced]
    assert receiver_code(RECEIVERS / name) == page


def test_the_sdk_package_is_the_one_the_page_imports() -> None:
    """The page's import line works unchanged: the package has the page's name."""
    import json

    package = json.loads((ROOT / "sdks" / "node" / "package.json").read_text())
    assert package["name"] == "@mappa-ai/mappa-node"
    assert 'import { Mappa } from "@mappa-ai/mappa-node";' in SEED.read_text()
    assert not package.get("dependencies"), "the SDK has no runtime dependencies"
