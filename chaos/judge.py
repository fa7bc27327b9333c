"""What fails a chaos run beyond the rows (chaos/verify.py): the api's answers, the faults'
probes and preconditions, the poison corpus, the dead queues.

    api answers     any 5xx but a shaped 503 (SPEC §4 body and Retry-After); an answer slower
                    than API_BOUND_S, or none at all (the client's timeout): something hung
    faults          a probe that never recovered; a fault whose precondition was not met (the
                    sender held nothing when killed, the api was never caught holding its event)
    poison corpus   each message published straight to AMQP ends where it must: kept as poison,
                    or stored as the event it is (its deliveries are then checked with the
                    rest); a duplicate message id creates nothing twice
    parked          a poison row that is not from the corpus: real work a fault pushed onto a
                    dead queue; anything still on a dead queue at the end
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from chaos.load import Answer

# The api answers within its publish timeout (2.5 s) or its database's (asyncpg's command
# timeout), whatever is down; twice the slowest of those is a hang.
API_BOUND_S = 15.0
# Not an answer, but not a hang either: the api was down (killed, restarting) and said so.
REFUSED = {"ClientConnectorError", "ServerDisconnectedError", "ClientOSError"}

Fate = Literal["poison", "event", "poison-or-event", "duplicate"]


@dataclass(frozen=True)
class CorpusItem:
    """One message the run published straight to AMQP, and where it must end."""

    name: str
    message_id: str
    fate: Fate


@dataclass(frozen=True)
class PoisonRow:
    message_id: str | None
    source_queue: str | None
    reason: str | None


@dataclass
class Judgement:
    problems: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def flag(self, kind: str, example: str) -> None:
        self.problems[kind] += 1
        if len(self.examples[kind]) < 5:
            self.examples[kind].append(example)

    @property
    def ok(self) -> bool:
        return not self.problems


def shaped_503(answer: Answer) -> bool:
    return answer.outcome == "503" and answer.error_code is not None and bool(answer.retry_after)


def judge_answers(judgement: Judgement, answers: Iterable[Answer]) -> None:
    for a in answers:
        if a.outcome.startswith("5") and not shaped_503(a):
            judgement.flag("5xx other than a shaped 503", f"{a.outcome} at {a.sent:.1f}")
        elif a.outcome == "TimeoutError":
            judgement.flag("api never answered (hung)", f"sent at {a.sent:.1f}")
        elif a.outcome not in REFUSED and a.took_s > API_BOUND_S:
            judgement.flag(
                f"api answer slower than {API_BOUND_S:g} s", f"{a.outcome} in {a.took_s:.1f} s"
            )


def judge_fault(
    judgement: Judgement, name: str, recovery_s: float | None, problems: Sequence[str]
) -> None:
    if recovery_s is None:
        judgement.flag("probe never recovered", name)
    for problem in problems:
        judgement.flag("fault not made as planned", f"{name}: {problem}")


def judge_poison(
    judgement: Judgement,
    corpus: Sequence[CorpusItem],
    poison: Sequence[PoisonRow],
    event_ids: set[str],
) -> None:
    """Every corpus message accounted for, and no poison but the corpus's."""
    kept = Counter(row.message_id for row in poison)
    for item in corpus:
        in_poison, stored = kept[item.message_id] > 0, item.message_id in event_ids
        accounted = {
            "poison": in_poison and not stored,
            "event": stored and not in_poison,
            "poison-or-event": in_poison != stored,
            "duplicate": stored and not in_poison,
        }[item.fate]
        if not accounted:
            where = f"poison={in_poison} stored={stored}"
            judgement.flag("poison corpus message unaccounted for", f"{item.name}: {where}")
    ours = {item.message_id for item in corpus}
    for row in poison:
        if row.message_id not in ours:
            judgement.flag(
                "parked: work kept as poison",
                f"{row.message_id} from {row.source_queue} ({row.reason})",
            )


def judge_dead_queues(judgement: Judgement, left: Mapping[str, int]) -> None:
    for queue, messages in left.items():
        if messages:
            judgement.flag("left on a dead queue", f"{queue}: {messages}")
