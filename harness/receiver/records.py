"""What a receiver keeps of each request.

A Record is the compact account every receiver keeps (the receiver process sends them as
JSON rows to the bench and chaos); a ReceivedRequest is the whole request (headers, body),
kept only in-process, where a test reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

NO_ANSWER = 0  # a Record's status until it is answered, or when the peer hung up first


def event_id_of(body: bytes) -> str | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed.get("eventId") if isinstance(parsed, dict) else None


@dataclass(slots=True)
class Record:
    path: str
    group: str  # the first path segment: what the receiver process counts by
    event_id: str | None
    delivery_id: str | None  # X-Webhook-Delivery
    arrived: float  # time.time()
    peer_port: int  # the client's port: which sender replica's connection it came on
    status: int = NO_ANSWER  # what was answered (NO_ANSWER: not yet, or nobody listened)
    answered: float | None = None  # time.time() when the answer went out
    streamed: int = 0  # body bytes written, for an endless body

    def to_row(self) -> list[Any]:
        return [
            self.path,
            self.group,
            self.event_id,
            self.delivery_id,
            self.arrived,
            self.peer_port,
            self.status,
            self.answered,
            self.streamed,
        ]

    @classmethod
    def from_row(cls, row: list[Any]) -> Record:
        return cls(*row)


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.time()
    query: str = ""  # the raw query string, exactly as it arrived

    def json(self) -> Any:
        return orjson.loads(self.body)
