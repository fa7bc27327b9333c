"""How a receiver answers a request: one small class per behaviour.

A behaviour turns an Arrival (which path, how many came before on it, which eventId) into a
Reply (status, headers, text, how long to wait first, or a body that never ends). The
in-process receiver of the tests and the receiver process of the bench and chaos both apply
these same classes; `parse` makes one from a short spec for the process's command line:

    ok                  200 at once
    status:410          that status, always (410: the endpoint is gone)
    slow:0.2            200 after 0.2 s
    flaky:0.3           500 at random 30 % of the time (seeded), else 200
    first-fails         500 on an eventId's first arrival, 200 on every later one
    retry-after:2       429 with `Retry-After: 2` on a path's first request, then 200
    retry-after-date:2  the same, Retry-After as an HTTP date 2 s ahead
    rate-limit:50       429 with `Retry-After: 1` while it has answered 50 in the last second
    endless-flood       500 and a body of 64 KiB chunks, as fast as the socket takes them
    endless-trickle     200 and a body of one byte every 0.2 s
    script:500,500,200  a path's requests get these in turn (the last one repeats)
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Protocol

OK_TEXT = "ok"
FAILURE_TEXT = "scripted failure"


@dataclass(frozen=True, slots=True)
class Arrival:
    path: str
    nth: int  # requests on this path before this one
    event_id: str | None  # the JSON body's "eventId", if it has one


@dataclass(frozen=True, slots=True)
class Stream:
    """A body that goes on until the peer hangs up (bounded so a test always ends)."""

    chunk: bytes
    pause_s: float  # between chunks; 0 still yields to the other connections
    max_s: float = 30.0
    max_bytes: int = 256 * 2**20


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    text: str = OK_TEXT
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait this long before answering
    stream: Stream | None = None  # instead of `text`


def _text(status: int) -> str:
    return OK_TEXT if status < 300 else FAILURE_TEXT


class Behaviour(Protocol):
    def reply(self, arrival: Arrival) -> Reply: ...


@dataclass
class Ok:
    def reply(self, arrival: Arrival) -> Reply:
        return Reply()


@dataclass
class Status:
    status: int

    def reply(self, arrival: Arrival) -> Reply:
        return Reply(self.status, _text(self.status))


@dataclass
class Slow:
    delay_s: float
    status: int = 200

    def reply(self, arrival: Arrival) -> Reply:
        return Reply(self.status, _text(self.status), delay_s=self.delay_s)


@dataclass
class Flaky:
    """500 at random `rate` of the time; seeded, so a run's sequence repeats."""

    rate: float
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def reply(self, arrival: Arrival) -> Reply:
        status = 500 if self._rng.random() < self.rate else 200
        return Reply(status, _text(status))


@dataclass
class FailFirstArrival:
    """500 the first time an eventId arrives, 200 every later time: one retry each."""

    _seen: set[str | None] = field(default_factory=set, repr=False, compare=False)

    def reply(self, arrival: Arrival) -> Reply:
        if arrival.event_id in self._seen:
            return Reply()
        self._seen.add(arrival.event_id)
        return Reply(500, FAILURE_TEXT)


@dataclass
class RetryAfter:
    """429 with `Retry-After` on a path's first `times` requests, then 200."""

    seconds: int
    http_date: bool = False  # the header as an HTTP date instead of delay-seconds
    times: int = 1

    def reply(self, arrival: Arrival) -> Reply:
        if arrival.nth >= self.times:
            return Reply()
        value = (
            formatdate(time.time() + self.seconds, usegmt=True)
            if self.http_date
            else str(self.seconds)
        )
        return Reply(429, "slow down", {"Retry-After": value})


@dataclass
class RateLimited:
    """A receiver with a rate limit: 200 while fewer than `per_s` were let through in the
    last second, else 429 with `Retry-After: 1`."""

    per_s: int
    _through: deque[float] = field(default_factory=deque, repr=False, compare=False)

    def reply(self, arrival: Arrival) -> Reply:
        now = time.monotonic()
        while self._through and now - self._through[0] >= 1.0:
            self._through.popleft()
        if len(self._through) >= self.per_s:
            return Reply(429, "slow down", {"Retry-After": "1"})
        self._through.append(now)
        return Reply()


@dataclass
class Endless:
    """A response body that never ends: what the sender's response cap is for."""

    status: int
    stream: Stream

    @classmethod
    def flood(cls) -> Endless:
        return cls(500, Stream(b"x" * 65536, pause_s=0.0))

    @classmethod
    def trickle(cls) -> Endless:
        return cls(200, Stream(b".", pause_s=0.2))

    def reply(self, arrival: Arrival) -> Reply:
        return Reply(self.status, stream=self.stream)


@dataclass
class Scripted:
    """A path's requests get `statuses` in turn; the last one repeats."""

    statuses: list[int]
    delay_s: float = 0.0

    def reply(self, arrival: Arrival) -> Reply:
        status = self.statuses[min(arrival.nth, len(self.statuses) - 1)]
        return Reply(status, _text(status), delay_s=self.delay_s)


@dataclass
class Redirect:
    """A 3xx pointing elsewhere: the sender must not follow it."""

    status: int
    location: str

    def reply(self, arrival: Arrival) -> Reply:
        return Reply(self.status, FAILURE_TEXT, {"Location": self.location})


def parse(spec: str, seed: int = 0) -> Behaviour:
    """A behaviour from its spec (the module's docstring lists them)."""
    kind, _, arg = spec.partition(":")
    match kind:
        case "ok":
            return Ok()
        case "status":
            return Status(int(arg))
        case "slow":
            return Slow(float(arg))
        case "flaky":
            return Flaky(float(arg), seed)
        case "first-fails":
            return FailFirstArrival()
        case "retry-after" | "retry-after-date":
            return RetryAfter(int(arg), http_date=kind == "retry-after-date")
        case "rate-limit":
            return RateLimited(int(arg))
        case "endless-flood":
            return Endless.flood()
        case "endless-trickle":
            return Endless.trickle()
        case "script":
            return Scripted([int(s) for s in arg.split(",")])
    raise ValueError(f"unknown receiver behaviour {spec!r}")
