"""The per-endpoint chart's numbers (a pure function: rows in, bars out; no fakes needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.api.dashboard.chart import HEIGHT, HOURS, hourly_chart, start_of_window

NOW = datetime(2026, 6, 7, 12, 34, 56, tzinfo=UTC)


def test_24_hourly_bars_stacked_and_scaled_to_the_busiest_hour() -> None:
    first = start_of_window(NOW)
    assert first == datetime(2026, 6, 6, 13, tzinfo=UTC)
    rows = [
        {"hour": first, "succeeded": 3, "failed": 1},
        {"hour": first + timedelta(hours=23), "succeeded": 0, "failed": 8},
        {"hour": first - timedelta(hours=1), "succeeded": 99, "failed": 99},  # outside
    ]
    chart = hourly_chart(rows, NOW)  # type: ignore[arg-type]
    assert len(chart.bars) == HOURS
    assert (chart.succeeded, chart.failed, chart.peak) == (3, 9, 8)
    oldest, newest = chart.bars[0], chart.bars[-1]
    assert (oldest.succeeded, oldest.failed) == (3, 1)
    assert newest.failed_height == HEIGHT - 4  # the busiest hour fills the chart
    assert newest.ok_height == 0
    # stacked: the successes sit right on top of the failures
    assert oldest.ok_y + oldest.ok_height == oldest.failed_y
    assert oldest.failed_y + oldest.failed_height == HEIGHT
    assert all(b.x < c.x for b, c in zip(chart.bars, chart.bars[1:], strict=False))


def test_an_idle_endpoint_has_empty_bars() -> None:
    chart = hourly_chart([], NOW)
    assert chart.peak == 0 and all(b.ok_height == b.failed_height == 0 for b in chart.bars)
