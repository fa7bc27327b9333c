"""How hard an engine may push each endpoint: adaptive concurrency, the customer's rate
limit, and the receiver's Retry-After.

- **Concurrency adapts to what the endpoint answers** (AIMD, as TCP does): until its first
  overload answer each success adds 1 to its limit (slow start: it doubles per round), then
  1/limit. A round is as long as the endpoint's answers take, so slow start also goes by
  the clock: an endpoint that has answered well and never been overloaded, found full,
  doubles its limit at most once per `GROW_EVERY_S`. Otherwise a healthy 2 s endpoint took
  4 rounds, 8 s, to reach the 400 in flight that 200 events/s need, and the excess went
  through a retry tier and a sender meanwhile (BENCHMARKS.md, "Session 12"). Each
  overload answer (429, 5xx, a timeout, a refused connection) halves it, at
  most once per `DECREASE_EVERY_S` so that one overload's burst of failures halves it once.
  A slow endpoint therefore holds a bounded share of the engine's slots, and a struggling
  one is sent less.
- **`rateLimitPerSecond`** (an endpoint's own setting) is a token bucket.
- **A Retry-After** (429 or 503) holds the whole endpoint back until it has passed.

An attempt with no room that a slot will free within `HOLD_S` (the endpoint's attempts are
quick, and few steps wait for it) waits here for that slot, first come first served
(`acquire`): sending it back would cost a trip through the broker and at least a second, and
a burst (one batch message's events to one endpoint) would churn through a retry tier. So
does one while a new endpoint's first round is out (`FIRST_ROUND_S`, up to its ceiling):
whether it is quick, slow or dead, its first answers tell, and a slow but healthy one then
grows by the clock and takes the crowd at once. Sent back instead, the crowd went through a
retry tier to senders that knew nothing of the endpoint either, and back again, and that
churn was what a fast endpoint beside it paid for (BENCHMARKS.md, "Session 12"). Any
other attempt with no room is not made: the engine defers its step to the delay ladder, so it
never holds one of the queue's prefetch slots that other endpoints' work needs. How long it
waits follows a queue: the steps already waiting for that endpoint, divided by what the
endpoint gets through per second (its limit over its attempts' duration, or its rate). So
an endpoint far over its capacity has its backlog come back spread over time, at the pace it
can take, instead of every deferred step coming back each second. A Retry-After's hold
paces them the same way, by what the endpoint has taken per second lately: otherwise every
step of a throttled endpoint's backlog came back each second, through the queue every other
endpoint's steps share (BENCHMARKS.md, "Session 10").

Every engine keeps its own limits, and takes its share of an endpoint's ceiling and rate:
`share` is 1 / the engines of its own kind running (libs/worker/membership.py). Dispatchers
make first attempts and senders the rest, so the ceiling bounds each kind apart: an endpoint
sees at most its ceiling of first attempts and its ceiling of retries in flight, and its rate
within one engine's share while replicas come and go. Split over every engine, a 2 s
endpoint's first attempts had a third of its ceiling, and the backlog beyond it went the
long way, through a retry tier and a sender (BENCHMARKS.md, "Session 11").
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from libs.delivery.http_client import HttpResult

INITIAL = 32.0
MINIMUM = 1.0
DECREASE_EVERY_S = 1.0
IDLE_FORGET_S = 600.0  # an endpoint idle this long starts afresh
MAX_ENDPOINTS = 50_000  # beyond it, idle endpoints are forgotten first
MAX_WAITING = 100_000  # deferred steps remembered per endpoint (the rest wait as the last)
MIN_WAIT_S = 1.0
MIN_PACE_PER_S = 10.0  # a held endpoint this engine has no pace for (see `_admit`)
HOLD_S = 0.5  # an attempt expected to get a slot within this waits for it (see the top)
FIRST_ROUND_S = 3.0  # how long a new endpoint's first answers are waited for (see the top)
GROW_EVERY_S = 0.25  # slow start by the clock: a proven endpoint's limit doubles at most this often
HAND_OVER_PER_TURN = 16  # waiting attempts let in per event loop turn (see `_let_in`)


class _Hold:
    """`_admit`'s answer for an attempt that waits here for a slot."""


HOLD = _Hold()


@dataclass
class _Endpoint:
    limit: float
    in_flight: int = 0
    not_before: float = 0.0  # a Retry-After holds the endpoint until then
    tokens: float = 0.0  # the rate limit's bucket
    refilled: float = 0.0
    decreased: float = float("-inf")
    used: float = 0.0
    slow_start: bool = True
    proven: bool = False  # it has answered with a success
    answered: bool = False  # it has answered at all (or been found unreachable)
    first_sent: float | None = None  # when its first attempt went
    grown: float = float("-inf")  # when slow start last doubled the limit by the clock
    duration_s: float = 0.05  # its attempts' duration, a moving average
    taken: int = 0  # attempts it took (answered without an overload) since `counted`
    counted: float = 0.0
    taken_per_s: float = 0.0  # a moving average of those per second
    waiting: deque[float] = field(default_factory=deque)  # when each deferred step is due
    # attempts waiting here for a slot: True hands one over, False sends it back (a hold)
    holding: deque[asyncio.Future[bool]] = field(default_factory=deque)
    let_in_this_turn: int = 0  # of them, in this turn of the event loop (see `_let_in`)
    next_turn: bool = False  # the next turn is to start that count again


def overloaded(result: HttpResult) -> bool:
    """An answer that says the endpoint has too much: slow down."""
    if result.refused:
        return False  # never reached it
    status = result.http_status
    return status is None or status == 429 or status >= 500


class EndpointLimits:
    def __init__(
        self,
        ceiling: int,
        *,
        share: Callable[[], float] = lambda: 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`ceiling`: the most attempts in flight to one endpoint (across the engines of one
        kind); `share`: this engine's part of it (see the top)."""
        self._ceiling = ceiling
        self._share = share
        self._clock = clock
        self._endpoints: dict[str, _Endpoint] = {}

    def try_acquire(self, endpoint_id: str, rate_per_s: float | None = None) -> float | None:
        """None: go, a slot is taken (give it back with `release`); else the seconds until it
        is worth trying again."""
        wait = self._admit(endpoint_id, rate_per_s, may_hold=False)
        assert not isinstance(wait, _Hold)
        return wait

    async def acquire(self, endpoint_id: str, rate_per_s: float | None = None) -> float | None:
        """As `try_acquire`, except that an attempt a slot will free for soon waits here for
        it (see the top). Endpoints with a rate limit of their own wait for tokens in a retry
        tier, as before."""
        wait = self._admit(endpoint_id, rate_per_s, may_hold=not rate_per_s)
        if not isinstance(wait, _Hold):
            return wait
        state = self._endpoints[endpoint_id]
        if await self._hold(state, self._hold_for(state)):
            return None
        return self.try_acquire(endpoint_id, rate_per_s)  # sent back, or waited too long

    def _admit(
        self, endpoint_id: str, rate_per_s: float | None, *, may_hold: bool
    ) -> float | _Hold | None:
        """A slot (None), a wait here for one (HOLD, only when `may_hold`), or the seconds
        until it is worth trying again (the step is counted as deferred)."""
        now = self._clock()
        state = self._state(endpoint_id, now)
        rate = rate_per_s * self._share() if rate_per_s else None
        if state.not_before > now:
            # What it took lately, or, where this engine has no measure of that (a sender
            # given another engine's deferred steps), a floor: at one a second, a sender's
            # share of a throttled backlog came back over minutes while the endpoint took
            # about 40/s (BENCHMARKS.md, "Session 12"); any 429 among them holds it again.
            pace = max(MIN_PACE_PER_S, state.taken_per_s)
            return self._defer(state, pace, rate, now, at_least=state.not_before - now)
        if state.in_flight >= self._slots(state):
            self._let_in(state, now)
        slots = self._slots(state)
        full = state.in_flight >= slots or bool(state.holding)  # no overtaking those waiting
        if not full and not (rate and self._take_token(state, rate, now)):
            state.in_flight += 1
            if state.first_sent is None:
                state.first_sent = now
            return None
        if may_hold and self._may_hold(state, len(state.holding) + 1, slots, now):
            return HOLD
        return self._defer(state, slots / state.duration_s, rate, now)

    def _may_hold(self, state: _Endpoint, waiting: int, slots: float, now: float) -> bool:
        """Whether the `waiting`th attempt with no room waits here (see the top)."""
        if self._first_round(state, now):
            return waiting <= self._ceiling * self._share()
        # Otherwise at most one round of the slots: a crowd waiting on a slow endpoint's
        # slots would hold its messages for nothing.
        return waiting <= slots and waiting * state.duration_s / slots <= HOLD_S

    @staticmethod
    def _first_round(state: _Endpoint, now: float) -> bool:
        return (
            not state.answered
            and state.first_sent is not None
            and now - state.first_sent < FIRST_ROUND_S
        )

    def _hold_for(self, state: _Endpoint) -> float:
        """How long an attempt waits here at most: a first round's crowd until its end."""
        now = self._clock()
        if self._first_round(state, now):
            assert state.first_sent is not None
            return state.first_sent + FIRST_ROUND_S - now + HOLD_S
        return 2 * HOLD_S

    def _grow(self, state: _Endpoint, now: float) -> None:
        """Slow start by the clock (see the top)."""
        if state.slow_start and state.proven and now - state.grown >= GROW_EVERY_S:
            state.limit = min(float(self._ceiling), state.limit * 2)
            state.grown = now

    async def _hold(self, state: _Endpoint, timeout_s: float) -> bool:
        """Wait for a slot handed over by `release` (True: it is taken), or until sent back
        or waiting `timeout_s` (False)."""
        handed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        state.holding.append(handed)
        try:
            async with asyncio.timeout(timeout_s):
                return await handed
        except TimeoutError:
            return handed.done() and not handed.cancelled() and handed.result()
        except BaseException:
            if handed.done() and not handed.cancelled() and handed.result():
                self._give_back(state)  # a slot it will never use
            raise
        finally:
            if not handed.done():
                handed.cancel()

    def release(self, endpoint_id: str, result: HttpResult) -> None:
        now = self._clock()
        state = self._state(endpoint_id, now)
        try:
            self._release(state, result, now)
        finally:
            self._give_back(state)

    def _give_back(self, state: _Endpoint) -> None:
        """A slot came free: to the first attempt waiting for one, if the endpoint may take
        it (a Retry-After hold sends every waiting attempt back to be deferred instead)."""
        state.in_flight = max(0, state.in_flight - 1)
        self._let_in(state, self._clock())

    def _let_in(self, state: _Endpoint, now: float) -> None:
        """Hand the free slots to the attempts waiting for one, first come first served,
        growing a proven endpoint's limit by the clock first (see the top).

        At most HAND_OVER_PER_TURN per turn of the event loop, the rest on the next turns:
        each one let in runs its POST's start on the next turn, and a slow endpoint's first
        crowd (hundreds, let in as its limit doubles) took the loop for 100-400 ms at once,
        which every other endpoint's attempts and events waited through (BENCHMARKS.md,
        "Session 15"). A turn also serves the loop's I/O in between."""
        held = state.not_before > now
        if not held and (state.holding or state.in_flight >= self._slots(state)):
            self._grow(state, now)
        while state.holding and (held or state.in_flight < self._slots(state)):
            handed = state.holding[0]
            if handed.done():
                state.holding.popleft()  # it gave up waiting
                continue
            self._on_next_turn(state, handed.get_loop())
            if state.let_in_this_turn == HAND_OVER_PER_TURN:
                return  # the next turn lets in more
            state.holding.popleft()
            if not held:
                state.in_flight += 1
            handed.set_result(not held)
            state.let_in_this_turn += 1

    def _on_next_turn(self, state: _Endpoint, loop: asyncio.AbstractEventLoop) -> None:
        """Start the turn's count again on the next turn, and let in whoever still waits."""
        if state.next_turn:
            return
        state.next_turn = True

        def next_turn() -> None:
            state.next_turn = False
            state.let_in_this_turn = 0
            self._let_in(state, self._clock())

        loop.call_soon(next_turn)

    def _release(self, state: _Endpoint, result: HttpResult, now: float) -> None:
        state.answered = True
        if not result.refused:
            state.duration_s = 0.8 * state.duration_s + 0.2 * max(result.duration_ms / 1000, 0.001)
        if result.retry_after_s:
            state.not_before = max(state.not_before, now + result.retry_after_s)
        if overloaded(result):
            state.slow_start = False
            if now - state.decreased >= DECREASE_EVERY_S:
                state.limit = max(MINIMUM, state.limit / 2)
                state.decreased = now
        elif not result.refused:
            self._count_taken(state, now)
        if result.succeeded:
            state.proven = True
            grown = state.limit + (1 if state.slow_start else 1 / state.limit)
            state.limit = min(float(self._ceiling), grown)

    def _slots(self, state: _Endpoint) -> float:
        return max(MINIMUM, min(state.limit, self._ceiling * self._share()))

    def limit(self, endpoint_id: str) -> float:
        """The endpoint's current concurrency limit here (for metrics and tests)."""
        state = self._endpoints.get(endpoint_id)
        return state.limit if state is not None else INITIAL

    def _state(self, endpoint_id: str, now: float) -> _Endpoint:
        state = self._endpoints.get(endpoint_id)
        idle = state is not None and state.in_flight == 0 and not state.holding
        if state is None or (idle and now - state.used > IDLE_FORGET_S):
            if len(self._endpoints) >= MAX_ENDPOINTS:
                self._forget_idle(now)
            state = self._endpoints[endpoint_id] = _Endpoint(
                min(INITIAL, self._ceiling), counted=now
            )
        state.used = now
        return state

    @staticmethod
    def _count_taken(state: _Endpoint, now: float) -> None:
        state.taken += 1
        elapsed = now - state.counted
        if elapsed >= 1.0:
            state.taken_per_s = 0.5 * state.taken_per_s + 0.5 * state.taken / elapsed
            state.taken = 0
            state.counted = now

    @staticmethod
    def _defer(
        state: _Endpoint,
        through_per_s: float,
        rate: float | None,
        now: float,
        at_least: float = MIN_WAIT_S,
    ) -> float:
        """How long a step that found no room waits: behind those already waiting, at the
        pace the endpoint gets through (see the top)."""
        while state.waiting and state.waiting[0] <= now:
            state.waiting.popleft()
        pace = min(through_per_s, rate) if rate else through_per_s
        wait = max(MIN_WAIT_S, at_least, (len(state.waiting) + 1) / max(pace, 0.01))
        if len(state.waiting) < MAX_WAITING:
            state.waiting.append(now + wait)
        return wait

    @staticmethod
    def _take_token(state: _Endpoint, rate_per_s: float, now: float) -> float:
        """Seconds until a token is there (0: one was taken)."""
        burst = max(1.0, rate_per_s)
        state.tokens = min(burst, state.tokens + (now - state.refilled) * rate_per_s)
        state.refilled = now
        if state.tokens >= 1.0:
            state.tokens -= 1.0
            return 0.0
        return (1.0 - state.tokens) / rate_per_s

    def _forget_idle(self, now: float) -> None:
        idle = [k for k, s in self._endpoints.items() if s.in_flight == 0 and not s.holding]
        idle.sort(key=lambda k: self._endpoints[k].used)
        for key in idle[: max(1, len(idle) // 2)]:
            del self._endpoints[key]
