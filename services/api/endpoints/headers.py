"""Checks on the customer-chosen headers (apiKeyName, additionalHeaders).

The sender adds them to every attempt, so they must be valid HTTP and may never replace a
header hookpost itself sets (signatures, event type, delivery id, framing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from libs.domain.headers import HEADER_NAME as _TOKEN
from libs.domain.headers import RESERVED_HEADERS

# Visible ASCII, space and tab; CR/LF would split the header (response splitting).
_VALUE = re.compile(r"^[\t\x20-\x7e]*$")

# Authorization is allowed as apiKeyName (whose value is stored encrypted) but not as a
# plain additional header, whose values are stored as they are.
_NOT_ADDITIONAL = RESERVED_HEADERS | {"authorization"}

MAX_ADDITIONAL_HEADERS = 20
MAX_NAME_LENGTH = 256
MAX_VALUE_LENGTH = 4096


class InvalidHeaders(ValueError):
    """The message names the offending headers (for the API's 400)."""


def _check_name(name: str) -> None:
    if len(name) > MAX_NAME_LENGTH or not _TOKEN.match(name):
        raise InvalidHeaders(f"{name!r} is not a valid HTTP header name")


def _check_value(name: str, value: str) -> None:
    if len(value) > MAX_VALUE_LENGTH or not _VALUE.match(value):
        raise InvalidHeaders(
            f"the value of header {name!r} must be printable ASCII without line breaks"
        )


def check_api_key(name: str | None, value: str | None) -> None:
    if name is None and value is None:
        return
    if not name or value is None:
        raise InvalidHeaders("apiKeyName and apiKeyValue must be given together")
    _check_name(name)
    if name.lower() in RESERVED_HEADERS:
        raise InvalidHeaders(f"apiKeyName may not be the reserved header {name!r}")
    _check_value(name, value)


def check_additional_headers(headers: Mapping[str, str], api_key_name: str | None) -> None:
    if len(headers) > MAX_ADDITIONAL_HEADERS:
        raise InvalidHeaders(f"at most {MAX_ADDITIONAL_HEADERS} additional headers are allowed")
    reserved = sorted(name for name in headers if name.lower() in _NOT_ADDITIONAL)
    if reserved:
        raise InvalidHeaders(
            f"additionalHeaders may not set reserved headers: {', '.join(reserved)}"
        )
    lowered = [name.lower() for name in headers]
    if len(set(lowered)) != len(lowered):
        raise InvalidHeaders("additionalHeaders names a header twice (names are case-insensitive)")
    if api_key_name is not None and api_key_name.lower() in lowered:
        raise InvalidHeaders(f"{api_key_name!r} is already set by apiKeyName")
    for name, value in headers.items():
        _check_name(name)
        _check_value(name, value)
