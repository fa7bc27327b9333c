"""The Node SDK's own unit tests (sdks/node/test, node's built-in runner) in `make test`, run
against its dist/ (compiled by tsc when the sources changed), as the published package is."""

from __future__ import annotations

import re

from tests.seeds_node.toolchain import SDK, run, sdk_built


def test_node_sdk_unit_tests_pass() -> None:
    sdk_built()
    out = run(["node", "--test", "test/"], SDK, timeout=300)
    passed = re.search(r"^# pass (\d+)$", out, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", out, re.MULTILINE)
    assert passed and failed, out[-3000:]
    assert int(failed.group(1)) == 0, out[-3000:]
    assert int(passed.group(1)) >= 30, out[-3000:]  # all of them ran, not only a few
