"""Node for the seed-004 tests: the toolchain, npm installs cached on their lockfile, the Node
SDK's `npm pack` tarball, and the seed's receivers built (tsc for Express and Fastify, `next
build` for Next.js). Each step is redone only when its inputs change (a stamp holds the hash of
what it was made from), so a second `make test` spends seconds here, not minutes.

Nothing is skipped: no node, an old node, or a failing npm step fails the test with the output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "sdks" / "node"
RECEIVERS = Path(__file__).resolve().parent / "receivers"
CACHE = ROOT / ".hookpost" / "node"  # gitignored with the rest of .hookpost/
MIN_NODE = (18, 18)  # Next.js 15's floor; the SDK itself needs 18
SKIP_DIRS = {"node_modules", ".next", ".build", "dist"}


def node_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "NEXT_TELEMETRY_DISABLED": "1",
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
        **extra,
    }


def run(
    argv: list[str], cwd: Path, timeout: float = 900, input: str | None = None, **env: str
) -> str:
    """`argv` in `cwd` (`input` on its stdin); its stdout, or the test fails with the tail of
    what it printed."""
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=node_env(**env),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except FileNotFoundError as exc:
        pytest.fail(
            f"{argv[0]} is missing ({exc}): `make test` installs it (scripts/ensure-node.sh)"
        )
    if done.returncode != 0:
        pytest.fail(
            f"`{' '.join(argv)}` in {cwd} exited {done.returncode}:\n"
            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done.stdout


def node_version() -> tuple[int, int, int]:
    """Node's version; fails the test, saying what is missing, when node or npm is not there."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            f"Node.js and npm are missing (node: {node}, npm: {npm}): `make test` installs "
            "Debian's nodejs and npm (scripts/ensure-node.sh) when run as root"
        )
    text = run([node, "--version"], ROOT).strip().lstrip("v")
    major, minor, patch = (int(part) for part in text.split(".")[:3])
    if (major, minor) < MIN_NODE:
        pytest.fail(f"Node.js {text} is too old: the seed's receivers need >= 18.18")
    return major, minor, patch


def digest(paths: Iterable[Path], *extra: str) -> str:
    """sha256 of the files under `paths` (names and contents; build outputs left out)."""
    h = hashlib.sha256()
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if SKIP_DIRS.intersection(file.relative_to(path.parent).parts):
                continue
            h.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes() + b"\0")
    for item in extra:
        h.update(item.encode() + b"\0")
    return h.hexdigest()


def cached(stamp: Path, key: str, build: Callable[[], object]) -> None:
    """`build()` unless `stamp` says it was already done from the same inputs (`key`)."""
    if stamp.exists() and stamp.read_text() == key:
        return
    build()
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key)


def npm_ci(project: Path) -> None:
    """`npm ci` in `project`, only when its lockfile or the node version changed since the last.
    --prefer-offline: packages come from npm's own cache when it has them."""
    key = digest([project / "package-lock.json"], ".".join(map(str, node_version())))
    stamp = project / "node_modules" / ".hookpost-lock-digest"  # npm ci wipes it with the rest
    cached(stamp, key, lambda: run(["npm", "ci", "--prefer-offline"], project))


def sdk_inputs() -> list[Path]:
    names = ("src", "package.json", "package-lock.json", "tsconfig.json", "README.md")
    return [SDK / name for name in names]


def sdk_built() -> None:
    """sdks/node/dist compiled from the current sources (tsc), by the SDK's own build script."""
    npm_ci(SDK)
    stamp = SDK / "dist" / ".hookpost-digest"
    cached(stamp, digest(sdk_inputs()), lambda: run(["npm", "run", "build"], SDK))


def sdk_tarball() -> Path:
    """The SDK as `npm pack` makes it from the built dist/ (one tarball per source digest)."""
    sdk_built()
    out = CACHE / "sdk" / digest(sdk_inputs())[:16]
    tarballs = list(out.glob("*.tgz")) if out.exists() else []
    if not tarballs:
        out.mkdir(parents=True, exist_ok=True)
        # --ignore-scripts: prepack would compile again what sdk_built just did
        argv = ["npm", "pack", "--ignore-scripts", "--pack-destination", str(out)]
        tarballs = [out / run(argv, SDK).strip().splitlines()[-1]]
    assert tarballs[0].exists(), f"npm pack wrote no {tarballs[0]}"
    return tarballs[0]


def unpack(tarball: Path, node_modules: Path, name: str = "@mappa-ai/mappa-node") -> None:
    """What `npm install <tarball>` does for a package without dependencies: its `package/`
    directory becomes node_modules/<name>."""
    target = node_modules / name
    key = hashlib.sha256(tarball.read_bytes()).hexdigest()
    stamp = target / ".hookpost-tarball-digest"
    if stamp.exists() and stamp.read_text() == key:
        return
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            member.name = member.name.removeprefix("package/")
            if member.name and member.name != "package":
                tar.extract(member, target, filter="data")
    stamp.write_text(key)


def build_receivers() -> Path:
    """The receivers ready to run: npm ci, the SDK unpacked, tsc, next build. The tarball."""
    tarball = sdk_tarball()
    npm_ci(RECEIVERS)
    unpack(tarball, RECEIVERS / "node_modules")
    sdk_key = hashlib.sha256(tarball.read_bytes()).hexdigest()
    lock = RECEIVERS / "package-lock.json"
    bins = RECEIVERS / "node_modules" / ".bin"
    cached(
        RECEIVERS / ".build" / ".hookpost-digest",
        digest([RECEIVERS / "servers", RECEIVERS / "tsconfig.servers.json", lock], sdk_key),
        lambda: run([str(bins / "tsc"), "-p", "tsconfig.servers.json"], RECEIVERS),
    )
    cached(
        RECEIVERS / ".next" / ".hookpost-digest",  # next build empties .next first
        digest([RECEIVERS / "app", RECEIVERS / "tsconfig.json", lock], sdk_key),
        lambda: run([str(bins / "next"), "build"], RECEIVERS),
    )
    return tarball


def package_version(project: Path, name: str) -> str:
    """The version of `name` that `project`'s lockfile installs."""
    lock = json.loads((project / "package-lock.json").read_text())
    return lock["packages"][f"node_modules/{name}"]["version"]
