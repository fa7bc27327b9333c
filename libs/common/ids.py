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


def new_id(prefix: IdPrefix) -> str:
    return f"{prefix.value}_{ULID()}"
