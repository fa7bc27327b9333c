"""What responses, logs and metrics show instead of secrets."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from libs.common.secrets import MASK, mask_secret


def mask_url(url: str) -> str:
    """The URL with every query value masked: `?token=abc&x=1` -> `?token=••••&x=••••`.

    A token in the query is the common way receivers authenticate a webhook URL, and we
    cannot tell a token from an ordinary parameter, so every value is masked. A bare
    segment without `=` could be a token too and is masked whole. The fragment is never
    sent over HTTP and is dropped.
    """
    parts = urlsplit(url)
    if not parts.query:
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    masked = []
    for segment in parts.query.split("&"):
        name, sep, _ = segment.partition("=")
        masked.append(f"{name}={MASK}" if sep else MASK)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(masked), ""))


def mask_value(value: str | None) -> str | None:
    return None if value is None else mask_secret(value)
