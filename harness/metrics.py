"""One sample out of a service's Prometheus text (/metrics)."""

from __future__ import annotations

import httpx

from harness.process import Process


def sample(text: str, name: str, labels: str = "") -> float:
    """`name{labels}`'s value in `text` (0 when absent)."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def scrape(proc: Process) -> str:
    """A service's /metrics, over HTTP like Prometheus."""
    response = httpx.get(proc.url("/metrics"), timeout=5)
    response.raise_for_status()
    return response.text


def metric_value(proc: Process, name: str, labels: str = "") -> float:
    return sample(scrape(proc), name, labels)
