"""Rows into the dataclasses the services hand to routers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_columns(cls: type[T], record: Mapping[str, Any], **converted: Any) -> T:
    """A `cls` (a dataclass) whose fields are the record's columns of the same names, as
    stored; `converted` gives the fields that are not (an enum, a decoded or computed value)."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    return cls(**{name: record[name] for name in names if name not in converted}, **converted)
