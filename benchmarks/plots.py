"""The plots of a bench run (matplotlib, Agg): docs/bench/*.png."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from benchmarks.results import BenchResults


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _throughput(results: BenchResults, out: Path) -> Path | None:
    phases = [
        ("1 endpoint per event (POST /events)", results.throughput_1),
        (f"fan-out {results.throughput_fanout.fanout} (POST /events)", results.throughput_fanout),
        ("1 endpoint per event (AMQP producer, no api)", results.throughput_amqp),
    ]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for label, phase in phases:
        s = phase.series
        t = np.asarray(s.arrivals) - s.t0
        if not len(t):
            continue
        bins = np.arange(0, np.ceil(t.max()) + 1, 1.0)
        counts, edges = np.histogram(t, bins=bins)
        (line,) = ax.plot(edges[:-1], counts, drawstyle="steps-post", label=label)
        ax.axvspan(s.w0 - s.t0, s.w1 - s.t0, color=line.get_color(), alpha=0.08)
    broker = results.ceilings.broker_round_trips_per_s
    ax.axhline(broker, color="grey", linestyle="--", linewidth=1)
    ax.text(1, broker, f" broker ceiling {broker:,.0f}/s", va="bottom", color="grey", fontsize=8)
    ax.set_xlabel("seconds since the phase started (shaded: the measured window)")
    ax.set_ylabel("deliveries received per second")
    ax.set_title("hookpost end to end: deliveries/s at the receiver (make bench)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="center right")
    ax.grid(alpha=0.3)
    return _save(fig, out / "throughput.png")


def _latency(results: BenchResults, out: Path) -> Path | None:
    lat = results.latency
    if not lat.latencies:
        return None
    values = np.sort(np.asarray(lat.latencies))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(values, np.arange(1, len(values) + 1) / len(values), label="event sent → first POST")
    for q, style in (("p50", ":"), ("p99", "--")):
        ax.axvline(lat.e2e_ms[q], color="grey", linestyle=style, linewidth=1)
        ax.text(lat.e2e_ms[q], 0.02, f" {q} {lat.e2e_ms[q]:.1f} ms", fontsize=8)
    ax.axvline(100, color="red", linestyle="--", linewidth=1, alpha=0.6)
    ax.text(100, 0.5, " target p99 100 ms", color="red", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (log scale)")
    ax.set_ylabel("fraction of events")
    ax.set_title(
        f"latency CDF at {lat.offered_events_per_s:,.0f} events/s offered (50 % of max), "
        f"{len(values):,} events"
    )
    ax.grid(alpha=0.3, which="both")
    return _save(fig, out / "latency_cdf.png")


def _inflight(results: BenchResults, out: Path) -> Path | None:
    runs = [
        results.concurrency_default,
        results.concurrency_big,
        results.concurrency_slow_endpoint,
    ]
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 4), squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        s = run.series
        for name in run.replicas:
            ax.plot(s["t"], s[name], label=name)
        ax.axhline(500, color="red", linestyle="--", linewidth=1, alpha=0.6)
        ax.axhline(run.prefetch, color="grey", linestyle=":", linewidth=1)
        ax.set_title(
            f"prefetch {run.prefetch}, endpoint {run.endpoint_ms} ms:"
            f" {run.total_deliveries_per_s:,.0f}/s"
        )
        ax.set_xlabel("seconds after the senders resumed")
        ax.set_ylabel("POSTs open at the receiver")
        ax.set_ylim(bottom=0, top=max(650, run.prefetch + 50))
        ax.legend()
        ax.grid(alpha=0.3)
    return _save(fig, out / "inflight.png")


def render(results: BenchResults, out: Path) -> list[Path]:
    written = []
    draws: tuple[Callable[[BenchResults, Path], Path | None], ...] = (
        _throughput,
        _latency,
        _inflight,
    )
    for draw in draws:
        try:
            path = draw(results, out)
        except Exception as exc:  # a plot never costs the run its figures
            print(f"plot {draw.__name__} failed: {exc!r}")
            continue
        if path:
            written.append(path)
    return written
