"""What one event's data can make a batch statement fail with (repository.py): the
batch is then retried one event at a time (handler.py), so only the failing one is requeued."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg


class EventDataError(Exception):
    """A statement shared by a batch failed on one event's data (a value Postgres refuses,
    an endpoint deleted in between): nothing was published, and the events should be
    retried one by one so that only the failing one is requeued."""


@contextmanager
def event_data_errors() -> Iterator[None]:
    """What one event's data can cause (SQLSTATE classes 22 and 23: a value Postgres
    refuses, a row referenced or deleted in between) becomes EventDataError."""
    try:
        yield
    except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
        raise EventDataError(str(exc)) from exc
