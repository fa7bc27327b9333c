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


def new_id(prefix: IdPrefix) -> str:
    return f"{prefix.value}_{ULID()}"
