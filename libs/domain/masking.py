"""What responses, logs, spans and metrics show instead of a URL's secrets (one implementation).

A token in the query is the common way receivers authenticate a webhook URL, and we cannot
tell a token from an ordinary parameter, so every query value is masked; `user:password@`
credentials are masked whole (endpoints may not carry them, but connection strings do).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from libs.domain.secrets import MASK

# scheme://… up to whitespace or a quote: what a URL looks like inside free text.
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s\"'<>]+")


def mask_url(url: str) -> str:
    """The URL with credentials and every query value masked, fragment dropped.

    `https://u:p@h/x?token=abc&x=1#f` -> `https://••••@h/x?token=••••&x=••••`. A bare query
    segment without `=` could be a token too and is masked whole. The fragment is never sent
    over HTTP and is dropped.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced IPv6 bracket: show nothing of it
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    if not parts.query:
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    masked = []
    for segment in parts.query.split("&"):
        name, sep, _ = segment.partition("=")
        masked.append(f"{name}={MASK}" if sep else MASK)
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(masked), ""))


def mask_urls_in(text: str) -> str:
    """`text` with every URL in it masked (log messages, exception texts)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: mask_url(match.group(0)), text)
