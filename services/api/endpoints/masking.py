"""What responses, logs and metrics show instead of secrets."""

from __future__ import annotations

from libs.domain.masking import mask_url
from libs.domain.secrets import mask_secret

__all__ = ["mask_url", "mask_value"]


def mask_value(value: str | None) -> str | None:
    return None if value is None else mask_secret(value)
