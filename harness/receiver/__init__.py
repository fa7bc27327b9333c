"""The recording HTTP receiver: `Receiver` in-process (tests), or its own process
(`python -m harness.receiver`, read through `ReceiverClient`: the bench and chaos); both
answer with the behaviours of behaviours.py."""

from harness.receiver.behaviours import (
    Behaviour,
    Endless,
    FailFirstArrival,
    Flaky,
    Ok,
    Redirect,
    RetryAfter,
    Scripted,
    Slow,
    Status,
)
from harness.receiver.client import ReceiverClient
from harness.receiver.inprocess import Receiver
from harness.receiver.records import NO_ANSWER, ReceivedRequest, Record

__all__ = [
    "NO_ANSWER",
    "Behaviour",
    "Endless",
    "FailFirstArrival",
    "Flaky",
    "Ok",
    "ReceivedRequest",
    "Receiver",
    "ReceiverClient",
    "Record",
    "Redirect",
    "RetryAfter",
    "Scripted",
    "Slow",
    "Status",
]
