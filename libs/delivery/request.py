"""What one attempt sends: the door's body, signed, with the customer's headers and ours.

`signed_request` is the whole recipe; it takes the endpoint's settings as decrypted once per
cache entry (endpoint_cache.py) and signs with every secret in force (the current one, then a
rotated one still in its grace window).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from libs.delivery.payloads import UnsendablePayload, request_body
from libs.delivery.repository import DeliveryRow
from libs.delivery.signatures import SigningKeys, UnsupportedSignatureScheme, signature_headers
from libs.domain.headers import DELIVERY_HEADER, EVENT_HEADER, RESERVED_HEADERS
from libs.domain.headers import HEADER_NAME as _TOKEN
from libs.infra.broker.messages import DeliveryTask

log = logging.getLogger("hookpost.delivery")

_BAD_VALUE = re.compile(r"[\r\n\x00]")


class Unsendable(ValueError):
    """No request can be made for this attempt; the message says why (recorded as its error)."""


@dataclass(frozen=True)
class SignedRequest:
    url: str
    url_masked: str
    body: bytes
    headers: dict[str, str]


def signed_request(
    task: DeliveryTask, row: DeliveryRow, attempt_id: str, sink_cap_bytes: int
) -> SignedRequest:
    """Raises Unsendable when the endpoint's settings cannot make a request."""
    endpoint = row.endpoint
    try:
        # The door's payload shape: the envelope, or an agent sink's job payload.
        body = request_body(task, row, attempt_id, sink_cap_bytes)
        plain = endpoint.plaintext
        signed = signature_headers(
            SigningKeys(endpoint.signature_scheme, endpoint.signing_secrets(datetime.now(UTC))),
            body,
            attempt_id,
            task.event_id,
            int(time.time()),
        )
    except (UnsupportedSignatureScheme, UnsendablePayload) as exc:
        raise Unsendable(str(exc)) from exc
    except Exception as exc:
        log.exception("could not decrypt the endpoint's settings")
        raise Unsendable("the endpoint's stored settings could not be read") from exc
    headers = customer_headers(
        endpoint.api_key_name, plain.api_key_value, endpoint.additional_headers
    )
    headers.update(signed)
    headers[EVENT_HEADER] = task.type
    headers[DELIVERY_HEADER] = attempt_id
    headers["Content-Type"] = "application/json"
    return SignedRequest(plain.url, endpoint.url_masked, body, headers)


def customer_headers(
    api_key_name: str | None, api_key_value: str | None, additional: Mapping[str, Any] | None
) -> dict[str, str]:
    """additionalHeaders then apiKeyName, minus reserved names and unsendable values."""
    chosen: dict[str, tuple[str, str]] = {}  # lower-case name -> (name, value)
    items = list((additional or {}).items())
    if api_key_name and api_key_value is not None:
        items.append((api_key_name, api_key_value))
    for name, value in items:
        if not isinstance(name, str) or not _TOKEN.match(name):
            continue
        if name.lower() in RESERVED_HEADERS:
            continue
        text = value if isinstance(value, str) else str(value)
        if _BAD_VALUE.search(text):
            continue
        chosen[name.lower()] = (name, text)
    return dict(chosen.values())
