"""Per-organization request rate limits: a token bucket per org, held in this process.

The buckets live in the api replica's memory, so the limit is per replica: N replicas let an
org through at up to N × the configured rate. That is enough to stop one org from flooding
the shared pipeline from a single client; a cluster-wide limit would need shared state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

# Buckets of orgs idle this long are full again and can be forgotten.
_FORGET_AFTER_S = 300.0
_SWEEP_EVERY = 10_000  # takes between sweeps of idle buckets


@dataclass
class _Bucket:
    tokens: float
    updated: float


class OrgRateLimiter:
    """`take(org)` answers 0 when the request may go, else the seconds until it may."""

    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._takes = 0

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    def take(self, org_id: str) -> float:
        if not self.enabled:
            return 0.0
        now = self._clock()
        self._sweep(now)
        bucket = self._buckets.get(org_id)
        if bucket is None:
            bucket = self._buckets[org_id] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate

    def _sweep(self, now: float) -> None:
        self._takes += 1
        if self._takes % _SWEEP_EVERY:
            return
        idle = [org for org, b in self._buckets.items() if now - b.updated > _FORGET_AFTER_S]
        for org in idle:
            del self._buckets[org]


def retry_after_seconds(wait_s: float) -> int:
    """Retry-After is whole seconds; never 0, which would invite an immediate retry."""
    return max(1, math.ceil(wait_s))
