"""A wait of any length, to within `UNIT_S`, with no per-message TTL: the binary delay ladder.

A TTL queue expires messages only at its head, so a message with a short per-message TTL
behind one with a longer TTL waits for it (SPEC §1). Every queue of the ladder has one TTL for
all its messages, so none ever waits behind another. Level j ≥ 1 holds a step for
`UNIT_S · 2^(j-1)` and level 0 for `UNIT_S`; a wait of `(n + 1) · UNIT_S` visits level 0 and
the levels of n's set bits, highest first. The routing key carries n's bits; the topic
exchange a step reaches (the entry, or the one a level's queue dead-letters to) binds every
lower level's queue by "the bits between clear, its own set", so each hop is one routing
straight to the next queue it waits in, and no consumer sees the step until level 0
dead-letters it to the work queue. (A chain of exchanges, one per level as NServiceBus's
delayed delivery has, cost the broker about 1.3 ms per step here, against 0.25 ms for a
retry tier's hop: BENCHMARKS.md, "Session 14".) At most `LEVELS + 1` hops; about 4 for waits
of a few seconds.
"""

from __future__ import annotations

import math

UNIT_S = 0.125  # the ladder's resolution: a step comes back at most this much after its wait
LEVELS = 15  # levels above 0: the longest wait is UNIT_S · 2^LEVELS = 4,096 s
LONGEST_S = UNIT_S * 2**LEVELS


def level_wait_s(level: int) -> float:
    """How long level `level`'s queue holds each step (unscaled)."""
    return UNIT_S if level == 0 else UNIT_S * 2 ** (level - 1)


def routing_key(wait_s: float) -> str:
    """The key of a step that must wait at least `wait_s` (capped at LONGEST_S): n's bits,
    level LEVELS's first, one topic word each."""
    units = min(max(math.ceil(wait_s / UNIT_S - 1e-9), 1), 2**LEVELS)
    n = units - 1  # level 0 always adds one unit
    return ".".join("1" if n >> (level - 1) & 1 else "0" for level in range(LEVELS, 0, -1))


def binding(after: int, level: int) -> str:
    """The binding pattern from the exchange a step reaches after level `after`'s queue
    (`after` = LEVELS + 1: the entry) to level `level`'s queue, the next it waits in: the
    bits between them clear, its own set (level 0 takes whatever has none left)."""
    assert 0 <= level < after <= LEVELS + 1
    words = ["*"] * LEVELS
    for between in range(max(level, 0) + 1, min(after, LEVELS + 1)):
        words[LEVELS - between] = "0"
    if level > 0:
        words[LEVELS - level] = "1"
    return ".".join(words)
