"""How hard an engine pushes one endpoint (libs/delivery/limits.py), on a fake clock."""

from __future__ import annotations

import asyncio

from libs.delivery.http_client import HttpResult
from libs.delivery.limits import (
    FIRST_ROUND_S,
    GROW_EVERY_S,
    HAND_OVER_PER_TURN,
    INITIAL,
    EndpointLimits,
)

OK = HttpResult(True, 200, None, "", 5)
FAILED = HttpResult(False, 500, "HTTP 500", "", 5)
TIMED_OUT = HttpResult(False, None, "timeout", None, 30_000, timed_out=True)
GONE_BAD = HttpResult(False, 404, "HTTP 404", "", 5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fill(limits: EndpointLimits, endpoint: str = "e") -> int:
    taken = 0
    while limits.try_acquire(endpoint) is None:
        taken += 1
    return taken


def test_concurrency_doubles_per_round_until_an_overload_then_grows_slowly() -> None:
    clock = Clock()
    limits = EndpointLimits(1000, clock=clock)
    assert fill(limits) == INITIAL
    for _ in range(32):
        limits.release("e", OK)
    assert limits.limit("e") == 64  # slow start: a round of successes doubled it
    limits.release("e", FAILED)
    assert limits.limit("e") == 32
    for _ in range(100):
        limits.release("e", OK)
    assert 34 < limits.limit("e") < 36  # about sqrt(2 * 100 + 32²)


def test_slow_start_also_goes_by_the_clock_once_the_endpoint_has_answered_well() -> None:
    """A 2 s endpoint's round is 2 s: found full after its first success, its limit doubles
    at most once per GROW_EVERY_S, up to the ceiling, instead of once per round."""
    clock = Clock()
    limits = EndpointLimits(512, clock=clock)
    fill(limits, "slow")
    clock.now += 2.0
    limits.release("slow", HttpResult(True, 200, None, "", 2000))
    fill(limits, "slow")
    assert limits.limit("slow") == (INITIAL + 1) * 2  # the success's 1, then one doubling
    assert limits.try_acquire("slow") is not None  # not again within GROW_EVERY_S
    for _ in range(3):
        clock.now += GROW_EVERY_S
        fill(limits, "slow")
    assert limits.limit("slow") == 512  # 66 → 528 in three steps, capped at the ceiling


def test_slow_start_does_not_grow_by_the_clock_before_a_success_or_after_an_overload() -> None:
    """An endpoint that has not answered yet may be dead: it keeps its first slots until an
    answer says more; one that was overloaded grows by its successes only."""
    clock = Clock()
    limits = EndpointLimits(512, clock=clock)
    assert fill(limits, "silent") == INITIAL
    clock.now += 10.0
    assert fill(limits, "silent") == 0
    fill(limits, "strained")
    limits.release("strained", OK)
    limits.release("strained", FAILED)  # halved: 33 → 16.5
    clock.now += 10.0
    assert limits.try_acquire("strained") is not None
    assert limits.limit("strained") == 16.5


def test_overload_halves_it_once_per_second_and_not_below_one() -> None:
    clock = Clock()
    limits = EndpointLimits(64, clock=clock)
    fill(limits)
    for _ in range(8):  # one overload's burst of failures
        limits.release("e", TIMED_OUT)
    assert limits.limit("e") == INITIAL / 2
    for _ in range(20):
        clock.now += 1.0
        limits.release("e", FAILED)
    assert limits.limit("e") == 1.0
    limits.release("e", GONE_BAD)  # a 404 is the payload's fault, not an overload
    assert limits.limit("e") == 1.0


def test_the_ceiling_is_shared_by_the_engines_running() -> None:
    limits = EndpointLimits(8, share=lambda: 0.25, clock=Clock())
    assert fill(limits) == 2
    other = EndpointLimits(8, share=lambda: 0.05, clock=Clock())
    assert fill(other) == 1  # never below one


def test_a_rate_limit_spaces_attempts_out() -> None:
    clock = Clock()
    limits = EndpointLimits(1000, clock=clock)
    taken = []
    for _ in range(40):  # 40 tries over 4 s at 10/s
        wait = limits.try_acquire("e", rate_per_s=5)
        if wait is None:
            taken.append(clock.now)
            limits.release("e", OK)
        clock.now += 0.1
    assert 20 <= len(taken) <= 25  # 5/s for 4 s, plus the first second's burst


def test_retry_after_holds_the_endpoint_and_other_endpoints_go_on() -> None:
    clock = Clock()
    limits = EndpointLimits(64, clock=clock)
    assert limits.try_acquire("busy") is None
    limits.release("busy", HttpResult(False, 429, "HTTP 429", "", 5, retry_after_s=12))
    assert limits.try_acquire("busy") == 12
    assert limits.try_acquire("calm") is None
    clock.now += 12
    assert limits.try_acquire("busy") is None


def test_steps_without_room_come_back_at_the_pace_the_endpoint_takes() -> None:
    """A 2 s endpoint with 32 slots takes 16 attempts a second: the steps that found no room
    are spread over the seconds ahead instead of all coming back each second."""
    clock = Clock()
    limits = EndpointLimits(32, clock=clock)  # a ceiling of 32 in flight
    fill(limits, "slow")
    for _ in range(20):  # it learns: 2 s per attempt
        limits.release("slow", HttpResult(True, 200, None, "", 2000))
        assert limits.try_acquire("slow") is None
    waits = [limits.try_acquire("slow") for _ in range(160)]
    assert all(w is not None for w in waits)
    assert waits[0] == 1.0  # at least the shortest tier
    assert 9 <= waits[-1] <= 12  # the 160th waits for the 160 before it at ~16/s
    assert waits == sorted(waits)
    clock.now += 1000
    assert limits.try_acquire("slow") is not None  # still full: nothing was released


def test_a_throttled_endpoints_backlog_comes_back_at_the_pace_it_took_not_each_second() -> None:
    """Held by `Retry-After: 1` after taking ~10 attempts a second: the steps that find it
    held wait behind one another at about that pace, instead of all returning each second
    through the queue every other endpoint's steps share."""
    clock = Clock()
    limits = EndpointLimits(1000, clock=clock)
    for _ in range(30):  # 3 s at 10 attempts a second
        assert limits.try_acquire("throttled") is None
        limits.release("throttled", OK)
        clock.now += 0.1
    assert limits.try_acquire("throttled") is None
    limits.release("throttled", HttpResult(False, 429, "HTTP 429", "", 5, retry_after_s=1))
    waits = [limits.try_acquire("throttled") for _ in range(100)]
    assert all(w is not None for w in waits) and waits == sorted(waits)
    assert waits[0] == 1.0  # the Retry-After itself
    assert 7 <= waits[-1] <= 14  # the 100th waits for the 99 before it, at ~10/s
    assert limits.try_acquire("bystander") is None


def test_a_held_endpoint_this_engine_took_nothing_from_is_paced_at_a_floor() -> None:
    """A sender given another engine's deferred steps of a throttled endpoint has no pace
    of its own for it: they come back at MIN_PACE_PER_S, not one a second."""
    clock = Clock()
    limits = EndpointLimits(1000, clock=clock)
    assert limits.try_acquire("throttled") is None
    limits.release("throttled", HttpResult(False, 429, "HTTP 429", "", 5, retry_after_s=1))
    waits = [limits.try_acquire("throttled") for _ in range(100)]
    assert all(w is not None for w in waits) and waits == sorted(waits)
    assert 9 <= waits[-1] <= 11  # 100 steps at 10 a second


# ------------------------------------------------ waiting here for a slot (`acquire`)


async def test_a_quick_endpoints_attempt_with_no_room_waits_for_the_next_slot() -> None:
    """A burst over the slots of an endpoint that answers in 5 ms waits here, first come
    first served, instead of going through a retry tier for a second or more."""
    limits = EndpointLimits(2, clock=Clock())
    assert await limits.acquire("quick") is None and await limits.acquire("quick") is None
    first = asyncio.create_task(limits.acquire("quick"))
    second = asyncio.create_task(limits.acquire("quick"))
    await asyncio.sleep(0)
    assert not first.done() and not second.done()
    assert limits.try_acquire("quick") is not None  # no overtaking those waiting
    limits.release("quick", OK)
    assert await first is None and not second.done()
    limits.release("quick", OK)
    assert await second is None


async def test_a_slow_endpoints_attempt_with_no_room_is_deferred_at_once() -> None:
    limits = EndpointLimits(2, clock=Clock())
    for _ in range(10):  # it learns: 2 s per attempt
        assert await limits.acquire("slow") is None
        limits.release("slow", HttpResult(True, 200, None, "", 2000))
    assert await limits.acquire("slow") is None and await limits.acquire("slow") is None
    wait = await asyncio.wait_for(limits.acquire("slow"), 0.1)
    assert wait is not None and wait >= 1.0


async def test_a_retry_after_sends_the_waiting_attempts_back_to_be_deferred() -> None:
    limits = EndpointLimits(3, clock=Clock())
    for _ in range(3):
        assert await limits.acquire("busy") is None
    waiting = [asyncio.create_task(limits.acquire("busy")) for _ in range(3)]
    await asyncio.sleep(0)
    limits.release("busy", HttpResult(False, 429, "HTTP 429", "", 5, retry_after_s=7))
    assert [await w for w in waiting] == [7, 7, 7]


async def test_an_attempt_waiting_too_long_is_deferred_and_leaves_no_slot_taken() -> None:
    limits = EndpointLimits(1, clock=Clock())
    assert await limits.acquire("stuck") is None
    limits.release("stuck", OK)  # its first round is over: it answers
    assert await limits.acquire("stuck") is None  # never released
    assert await limits.acquire("stuck") is not None  # gave up after 2 × HOLD_S
    limits.release("stuck", OK)
    assert await limits.acquire("stuck") is None  # the one slot is free again


async def test_a_cancelled_wait_gives_a_slot_handed_to_it_to_the_next_one() -> None:
    limits = EndpointLimits(2, clock=Clock())
    assert await limits.acquire("e") is None and await limits.acquire("e") is None
    cancelled = asyncio.create_task(limits.acquire("e"))
    after = asyncio.create_task(limits.acquire("e"))
    await asyncio.sleep(0)
    limits.release("e", OK)  # handed to `cancelled`, which is cancelled before it runs
    cancelled.cancel()
    assert await after is None


async def test_once_it_has_answered_at_most_one_round_of_the_slots_waits_here() -> None:
    """Beyond one waiter per slot, a crowd waiting on an endpoint that has answered would
    hold its messages for nothing were it slow: the rest are deferred at once."""
    limits = EndpointLimits(2, clock=Clock())
    assert await limits.acquire("e") is None
    limits.release("e", OK)
    assert await limits.acquire("e") is None and await limits.acquire("e") is None
    waiting = [asyncio.create_task(limits.acquire("e")) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiting)
    assert await asyncio.wait_for(limits.acquire("e"), 0.1) is not None
    limits.release("e", OK)
    limits.release("e", OK)
    assert [await w for w in waiting] == [None, None]


async def first_round_crowd(
    limits: EndpointLimits, endpoint: str, size: int
) -> list[asyncio.Task[float | None]]:
    """A new endpoint's first slots taken, and `size` attempts more waiting for a slot."""
    for _ in range(int(INITIAL)):
        assert await limits.acquire(endpoint) is None
    crowd = [asyncio.create_task(limits.acquire(endpoint)) for _ in range(size)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in crowd)
    return crowd


async def test_a_new_endpoints_crowd_waits_for_its_first_answers_then_goes_by_the_clock() -> None:
    """Until its first answers a new endpoint's crowd (up to its ceiling) waits here; a 2 s
    but healthy endpoint then doubles its limit per GROW_EVERY_S and lets it in."""
    clock = Clock()
    limits = EndpointLimits(256, clock=clock)
    crowd = await first_round_crowd(limits, "slow", 200)
    clock.now += 2.0
    for _ in range(4):
        limits.release("slow", HttpResult(True, 200, None, "", 2000))
        clock.now += GROW_EVERY_S
    await asyncio.sleep(0)
    assert [await w for w in crowd] == [None] * 200  # 33 → 66 → 132 → 256 in flight
    assert limits.limit("slow") == 256


async def test_a_crowd_is_let_in_a_few_per_loop_turn_not_all_at_once() -> None:
    """Each attempt let in starts its POST on the next turn of the loop: a 2 s endpoint's
    first crowd let in at once held the loop for 100-400 ms, which every other endpoint
    waited through. However many slots free up in a turn, at most HAND_OVER_PER_TURN go."""
    clock = Clock()
    limits = EndpointLimits(256, clock=clock)
    crowd = await first_round_crowd(limits, "slow", 200)
    clock.now += 2.0
    for _ in range(4):  # 33 → 66 → 132 → 256 slots: room for the whole crowd
        limits.release("slow", HttpResult(True, 200, None, "", 2000))
        clock.now += GROW_EVERY_S
    let_in = []
    while len(let_in) < 2 or let_in[-1] > let_in[-2]:
        await asyncio.sleep(0)
        let_in.append(sum(w.done() for w in crowd))
    steps = [b - a for a, b in zip([0, *let_in], let_in, strict=False)]
    assert let_in[-1] == 200
    assert max(steps) == HAND_OVER_PER_TURN


async def test_the_first_rounds_crowd_is_bounded_by_the_ceiling_and_by_time() -> None:
    """More than the ceiling's worth, or after FIRST_ROUND_S without an answer (a dead
    endpoint), an attempt with no room is deferred at once."""
    clock = Clock()
    limits = EndpointLimits(40, clock=clock)
    crowd = await first_round_crowd(limits, "dead", 40)
    assert await asyncio.wait_for(limits.acquire("dead"), 0.1) is not None  # the 41st
    clock.now += FIRST_ROUND_S
    assert await asyncio.wait_for(limits.acquire("other-dead"), 0.1) is None
    assert await asyncio.wait_for(limits.acquire("dead"), 0.1) is not None  # round over
    for waiting in crowd:
        waiting.cancel()
