"""CPU seconds of whole servers (RabbitMQ, PostgreSQL) that the bench does not start itself."""

from __future__ import annotations

import psutil


def cpu_by_pid(name_prefixes: tuple[str, ...]) -> dict[int, float]:
    """CPU seconds of every live process whose name starts with one of the prefixes."""
    found: dict[int, float] = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        name = proc.info["name"] or ""
        times = proc.info["cpu_times"]
        if times is not None and name.startswith(name_prefixes):
            found[proc.pid] = times.user + times.system
    return found


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two cpu_by_pid() snapshots (processes born in between count whole)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
