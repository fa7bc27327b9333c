"""The plots of a bench run (matplotlib, Agg): docs/bench/*.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def _throughput(results: dict[str, Any], out: Path) -> Path | None:
    keys = ("throughput_1", "throughput_fanout", "throughput_amqp")
    phases = [(k, results.get(k)) for k in keys]
    phases = [(k, p) for k, p in phases if p and "_series" in p]
    if not phases:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for key, phase in phases:
        s = phase["_series"]
        t = np.asarray(s["arrivals"]) - s["t0"]
        if not len(t):
            continue
        bins = np.arange(0, np.ceil(t.max()) + 1, 1.0)
        counts, edges = np.histogram(t, bins=bins)
        label = {
            "throughput_1": "1 endpoint per event (POST /events)",
            "throughput_fanout": f"fan-out {phase['fanout']} (POST /events)",
            "throughput_amqp": "1 endpoint per event (AMQP producer, no api)",
        }[key]
        (line,) = ax.plot(edges[:-1], counts, drawstyle="steps-post", label=label)
        ax.axvspan(s["w0"] - s["t0"], s["w1"] - s["t0"], color=line.get_color(), alpha=0.08)
    broker = results["ceilings"]["broker_round_trips_per_s"]
    ax.axhline(broker, color="grey", linestyle="--", linewidth=1)
    ax.text(1, broker, f" broker ceiling {broker:,.0f}/s", va="bottom", color="grey", fontsize=8)
    ax.set_xlabel("seconds since the phase started (shaded: the measured window)")
    ax.set_ylabel("deliveries received per second")
    ax.set_title("hookpost end to end: deliveries/s at the receiver (make bench)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="center right")
    ax.grid(alpha=0.3)
    path = out / "throughput.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _latency(results: dict[str, Any], out: Path) -> Path | None:
    lat = results.get("latency")
    if not lat or not lat.get("_latencies"):
        return None
    values = np.sort(np.asarray(lat["_latencies"]))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(values, np.arange(1, len(values) + 1) / len(values), label="event sent → first POST")
    for q, style in (("p50", ":"), ("p99", "--")):
        ax.axvline(lat["e2e_ms"][q], color="grey", linestyle=style, linewidth=1)
        ax.text(lat["e2e_ms"][q], 0.02, f" {q} {lat['e2e_ms'][q]:.1f} ms", fontsize=8)
    ax.axvline(100, color="red", linestyle="--", linewidth=1, alpha=0.6)
    ax.text(100, 0.5, " target p99 100 ms", color="red", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (log scale)")
    ax.set_ylabel("fraction of events")
    ax.set_title(
        f"latency CDF at {lat['offered_events_per_s']:,.0f} events/s offered (50 % of max), "
        f"{len(values):,} events"
    )
    ax.grid(alpha=0.3, which="both")
    path = out / "latency_cdf.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _inflight(results: dict[str, Any], out: Path) -> Path | None:
    keys = ("concurrency_default", "concurrency_big", "concurrency_slow_endpoint")
    runs = [results.get(k) for k in keys]
    runs = [r for r in runs if r and "_series" in r]
    if not runs:
        return None
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 4), squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        s = run["_series"]
        for name in run["replicas"]:
            ax.plot(s["t"], s[name], label=name)
        ax.axhline(500, color="red", linestyle="--", linewidth=1, alpha=0.6)
        ax.axhline(run["prefetch"], color="grey", linestyle=":", linewidth=1)
        ax.set_title(
            f"prefetch {run['prefetch']}, endpoint {run.get('endpoint_ms', 200)} ms:"
            f" {run['total_deliveries_per_s']:,.0f}/s"
        )
        ax.set_xlabel("seconds after the senders resumed")
        ax.set_ylabel("POSTs open at the receiver")
        ax.set_ylim(bottom=0, top=max(650, run["prefetch"] + 50))
        ax.legend()
        ax.grid(alpha=0.3)
    path = out / "inflight.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render(results: dict[str, Any], out: Path) -> list[Path]:
    written = []
    for draw in (_throughput, _latency, _inflight):
        try:
            path = draw(results, out)
        except Exception as exc:  # a plot never costs the run its figures
            print(f"plot {draw.__name__} failed: {exc!r}")
            continue
        if path:
            written.append(path)
    return written
