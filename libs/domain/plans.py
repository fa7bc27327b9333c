"""Plans in ascending order, and which event types each plan may receive."""

from __future__ import annotations

from enum import StrEnum


class Plan(StrEnum):
    FREE = "FREE"
    PRO = "PRO"
    PRO_MAX = "PRO_MAX"
    ENTERPRISE = "ENTERPRISE"

    @property
    def rank(self) -> int:
        return list(Plan).index(self)

    def at_least(self, other: Plan) -> bool:
        return self.rank >= other.rank
