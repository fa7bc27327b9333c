"""The base of every request and response model: snake_case in Python, camelCase in JSON."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    # populate_by_name lets services build responses with Python names; JSON stays camelCase.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def _storable(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded as UTF-8:
    # refuse both here so they are a 400, not a database error.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text") from exc
    return value


StorableText = Annotated[str, AfterValidator(_storable)]
# The URL an endpoint of any door POSTs to.
WebhookUrl = Annotated[StorableText, Field(max_length=2048)]
