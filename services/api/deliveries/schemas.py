from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, Field

from services.api.schemas import ApiModel


class AttemptOut(ApiModel):
    id: str
    attempt_number: int
    attempted_at: datetime
    http_status: int | None
    error: str | None
    duration_ms: int
    succeeded: bool


class DeliveryOut(ApiModel):
    id: str
    event_id: str
    event_type: str
    status: str
    attempt_count: int
    created_at: datetime
    updated_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    attempts: list[AttemptOut]


class DeliveryList(ApiModel):
    deliveries: list[DeliveryOut]


class RetryAccepted(ApiModel):
    delivery_id: str
    status: str


class RecoverIn(ApiModel):
    since: AwareDatetime = Field(
        description="RFC 3339 with its offset: re-send the deliveries created since then."
    )


class RecoverAccepted(ApiModel):
    deliveries: int = Field(description="How many deliveries went back on their way.")
