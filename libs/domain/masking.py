"""What responses, logs, spans and metrics show instead of a URL's secrets (one implementation).

A token in the query is the common way receivers authenticate a webhook URL, and we cannot
tell a token from an ordinary parameter, so every query value is masked; `user:password@`
credentials are masked whole (endpoints may not carry them, but connection strings do).
Tokens also ride in paths: Slack's `/services/T…/B…/<secret>`, Discord's
`/api/webhooks/<id>/<token>`, `;token=` parameters, a UUID a service hands out as the URL's
only secret. Every path segment that looks like one (long, letters with digits, or long and
of mixed case) is masked, and so is every `;name=value` parameter's value; words, short ids
and all-digit ids stay readable.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from libs.domain.secrets import MASK

# scheme://… up to whitespace or a quote: what a URL looks like inside free text.
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s\"'<>]+")
_LETTER, _DIGIT = re.compile(r"[A-Za-z]"), re.compile(r"[0-9]")
_LOWER, _UPPER = re.compile(r"[a-z]"), re.compile(r"[A-Z]")


def _looks_secret(segment: str) -> bool:
    if len(segment) >= 16 and _LETTER.search(segment) and _DIGIT.search(segment):
        return True
    return len(segment) >= 24 and bool(_LOWER.search(segment) and _UPPER.search(segment))


def _mask_path(path: str) -> str:
    masked = []
    for segment in path.split("/"):
        name, *params = segment.split(";")
        name = MASK if _looks_secret(name) else name
        hidden = [f"{p.partition('=')[0]}={MASK}" if "=" in p else MASK for p in params]
        masked.append(";".join([name, *hidden]))
    return "/".join(masked)


def mask_url(url: str) -> str:
    """The URL with credentials, secret-looking path segments, path parameter values and
    every query value masked, fragment dropped.

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
    path = _mask_path(parts.path)
    if not parts.query:
        return urlunsplit((parts.scheme, netloc, path, "", ""))
    masked = []
    for segment in parts.query.split("&"):
        name, sep, _ = segment.partition("=")
        masked.append(f"{name}={MASK}" if sep else MASK)
    return urlunsplit((parts.scheme, netloc, path, "&".join(masked), ""))


def mask_urls_in(text: str) -> str:
    """`text` with every URL in it masked (log messages, exception texts)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: mask_url(match.group(0)), text)
