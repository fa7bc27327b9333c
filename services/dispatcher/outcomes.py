"""What became of one event message, and how its message is settled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from libs.infra.broker.messages import DeliveryTask
from libs.worker.consumers import Verdict


class Outcome(StrEnum):
    """What became of one event (also the `outcome` label of EVENTS, except BUSY)."""

    DISPATCHED = "dispatched"
    DUPLICATE = "duplicate"
    RECOVERED = "recovered"
    LEFT_TO_RECONCILER = "left_to_reconciler"  # a recovery the broker refused (handler.py)
    DROPPED = "dropped"
    REJECTED = "rejected"
    REQUEUED = "requeued"
    BUSY = "busy"  # its twin holds the event's lock right now: wait for it, alone


VERDICTS = {
    Outcome.DISPATCHED: Verdict.ACK,
    Outcome.DUPLICATE: Verdict.ACK,
    Outcome.RECOVERED: Verdict.ACK,
    Outcome.LEFT_TO_RECONCILER: Verdict.ACK,
    Outcome.DROPPED: Verdict.ACK,
    Outcome.REJECTED: Verdict.REJECT,
    Outcome.REQUEUED: Verdict.REQUEUE,
}


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    message: str = ""  # the log line
    deliveries: int = 0  # deliveries created (or, RECOVERED, steps republished)
    first_attempts: tuple[DeliveryTask, ...] = ()  # to POST here before the ack
    dropped_this_hour: int | None = None  # set when this run counted the drop
    hour: str = ""
    error: BaseException | None = None


REJECTED_UNKNOWN_ORG = Result(Outcome.REJECTED, "event for an unknown organization, dead-lettering")
REJECTED_FOREIGN_ID = Result(
    Outcome.REJECTED, "event id belongs to another organization, dead-lettering"
)
DUPLICATE = Result(Outcome.DUPLICATE, "duplicate event message ignored")
BUSY = Result(Outcome.BUSY)


class FirstAttemptsUnsettled(Exception):
    def __init__(self, tasks: Sequence[DeliveryTask]) -> None:
        super().__init__(
            f"{len(tasks)} first attempt(s) could be neither settled nor handed to the sender"
            " queue; the event's redelivery recovers them"
        )
