"""Prefixed, time-sortable identifiers (`sub_01J…`): the prefix says what the id names."""

from __future__ import annotations

from enum import StrEnum

from ulid import ULID


class IdPrefix(StrEnum):
    ORGANIZATION = "org"
    SUBSCRIPTION = "sub"
    DESTINATION = "dest"
    EVENT = "evt"
    DELIVERY = "del"
    API_TOKEN = "hpk"
    MAPPING_JOB = "job"
    AGENT = "agt"
    WORKSPACE = "ws"
    DATA_SOURCE = "ds"
    EXPORT_WEBHOOK = "ewh"
    EXPORT_FILE = "exp"
    JOB_WEBHOOK = "jwh"
    REPORT_JOB = "rjob"
    REPORT = "rpt"
    REPORT_WEBHOOK = "rwh"
    PORTAL_LINK = "pl"


# The last ULID this process made, as an integer (its top 48 bits are its millisecond).
_last = 0


def new_id(prefix: IdPrefix) -> str:
    """A new id, greater than every id this process made before in the same millisecond.

    Why monotonic: an event's id is its place in its ordering key's line (ordered delivery,
    libs/delivery/ordering.py), and a producer's second event, accepted right after its
    first one, may get the same millisecond; two random ULIDs would then sort at random.
    """
    global _last
    value = int(ULID())
    if value >> 80 == _last >> 80 and value <= _last:
        value = _last + 1  # the same millisecond: the next value after the last one
    _last = value
    return f"{prefix.value}_{ULID.from_int(value)}"
