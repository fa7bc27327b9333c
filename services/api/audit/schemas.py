from __future__ import annotations

from datetime import datetime
from typing import Any

from services.api.schemas import ApiModel


class AuditEntryOut(ApiModel):
    id: int
    action: str
    details: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class AuditLogOut(ApiModel):
    entries: list[AuditEntryOut]
