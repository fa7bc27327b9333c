"""Time-limited download links: an HMAC over the file id and expiry, no bearer token needed.

The key is derived from HOOKPOST_ENCRYPTION_KEY (crypto.derived_key), so links survive
restarts and every api replica accepts the others' links.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

from libs.infra import crypto

_PURPOSE = "export-download-link"


def _signature(file_id: str, expires: int) -> str:
    message = f"{file_id}.{expires}".encode()
    return hmac.new(crypto.derived_key(_PURPOSE), message, hashlib.sha256).hexdigest()


def download_path(file_id: str) -> str:
    return f"/api/v1/export-files/{file_id}/download"


def signed_url(base_url: str, file_id: str, ttl_s: int, now: float | None = None) -> str:
    expires = int(now if now is not None else time.time()) + ttl_s
    query = urlencode({"expires": expires, "signature": _signature(file_id, expires)})
    return f"{base_url.rstrip('/')}{download_path(file_id)}?{query}"


class LinkInvalid(Exception):
    """The signature does not match, or the link has expired (the message says which)."""


def check(file_id: str, expires: int, signature: str, now: float | None = None) -> None:
    if not hmac.compare_digest(_signature(file_id, expires).encode(), signature.encode()):
        raise LinkInvalid("the download link's signature is not valid")
    if (now if now is not None else time.time()) > expires:
        raise LinkInvalid("the download link has expired: request a new export")
