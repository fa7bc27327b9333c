"""The portal links wire format."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from services.api.schemas import ApiModel, StorableText

DEFAULT_TTL_S = 3600


class PortalLinkIn(ApiModel):
    expires_in_seconds: int = Field(
        default=DEFAULT_TTL_S, description="How long the link opens the dashboard (≥ 60)."
    )
    frame_origin: StorableText | None = Field(
        default=None,
        max_length=300,
        description="The one origin that may frame the pages (e.g. https://app.example.com).",
    )


class PortalLinkOut(ApiModel):
    id: str
    organization_id: str
    url: str = Field(description="Shown only in this response: it opens the dashboard.")
    frame_origin: str | None
    expires_at: datetime
