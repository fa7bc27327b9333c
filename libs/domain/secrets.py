"""Signing secrets: generation and the masked form shown after creation."""

from __future__ import annotations

import base64
import secrets as _random

SECRET_PREFIX = "whsec_"
MASK = "••••"


def generate_signing_secret() -> str:
    """`whsec_` + base64(32 random bytes): valid for both v1 and Standard Webhooks."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(32)).decode("ascii")


def generate_api_token() -> str:
    return "hpk_" + _random.token_urlsafe(32)


def mask_secret(secret: str, visible: int = 4) -> str:
    """`whsec_••••3a0e`: enough to tell secrets apart, never enough to use one."""
    prefix = SECRET_PREFIX if secret.startswith(SECRET_PREFIX) else ""
    tail = secret[-visible:] if len(secret) > visible * 3 else ""
    return f"{prefix}{MASK}{tail}"
