"""py-spy under load: `py-spy record --nonblocking -f raw` of a service, summarised.

The raw format is one collapsed stack per line ("outer;…;leaf count"). Idle samples (the
event loop waiting in epoll) are left out by py-spy, so samples ÷ (rate × seconds) is the
share of wall time the process was running Python code.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from benchmarks.results import Profile, ProfileFailed, Profiles
from harness.process import Process

PY_SPY = Path(sys.executable).with_name("py-spy")
RATE_HZ = 50
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*)\)$")


async def record(pid: int, out: Path, seconds: int) -> Path | None:
    """Sample `pid` for `seconds`; the raw collapsed-stack file, or None if py-spy failed."""
    proc = await asyncio.create_subprocess_exec(
        str(PY_SPY),
        "record",
        "--pid", str(pid),
        "--duration", str(seconds),
        "--rate", str(RATE_HZ),
        "--nonblocking",
        "--nolineno",
        "--format", "raw",
        "--output", str(out),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await proc.communicate()
    if proc.returncode != 0:
        out.with_suffix(".err").write_bytes(output)
        return None
    return out


def _short(frame: str) -> str:
    """'handle (/…/site-packages/aiohttp/client.py)' → 'handle (aiohttp/client.py)'."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def _area(frame: str) -> str:
    """Which library (or hookpost package) a frame belongs to."""
    match = _FRAME.match(frame)
    path = match["file"] if match else frame
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/work/main/" in path or path.startswith(("services/", "libs/")):
        tail = path.split("/work/main/", 1)[-1]
        return "/".join(tail.split("/")[:2])
    if "python3.11/" in path:
        return "stdlib:" + path.split("python3.11/", 1)[1].split("/", 1)[0].removesuffix(".py")
    return path


async def profile_services(
    services: Mapping[str, Process], label: str, seconds: int, out_dir: Path
) -> Profiles:
    """py-spy on the services at once, for `seconds`; each one's summary, by name."""
    raws = await asyncio.gather(
        *(
            record(proc.pid, out_dir / f"{label}-{name}.txt", seconds)
            for name, proc in services.items()
        )
    )
    return {
        name: summarise(raw, seconds) if raw else ProfileFailed()
        for name, raw in zip(services, raws, strict=True)
    }


def summarise(raw: Path, seconds: int, top: int = 12) -> Profile:
    """Top frames of the main thread (the event loop); worker threads are counted apart."""
    self_frames: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    self_areas: Counter[str] = Counter()
    workers: Counter[str] = Counter()
    main = other = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        if not frames[0].startswith("<module>"):  # a thread other than the main one
            other += count
            workers[_short(frames[-1])] += count
            continue
        main += count
        self_frames[_short(frames[-1])] += count
        self_areas[_area(frames[-1])] += count
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += count

    def pct(n: int) -> float:
        return round(100.0 * n / main, 1) if main else 0.0

    possible = RATE_HZ * seconds
    return Profile(
        main_thread_samples=main,
        main_thread_busy_pct=round(100.0 * main / possible, 1),
        other_threads_busy_pct=round(100.0 * other / possible, 1),
        other_threads_top=[(f, round(100.0 * n / possible, 1)) for f, n in workers.most_common(4)],
        top_self=[(f, pct(n)) for f, n in self_frames.most_common(top)],
        top_self_by_library=[(a, pct(n)) for a, n in self_areas.most_common(top)],
        top_inclusive=[(f, pct(n)) for f, n in inclusive.most_common(top * 4)],
    )
