"""Page sizes shared by the list routes."""

from __future__ import annotations

from services.api.errors import BadRequestError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def clamp_limit(limit: int) -> int:
    """Cap at MAX_LIMIT (the seed says "capped", so larger asks are served, not refused)."""
    if limit < 1:
        raise BadRequestError("limit must be at least 1")
    return min(limit, MAX_LIMIT)
