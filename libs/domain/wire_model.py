"""The base of every model that goes on the wire to receivers (event data, an agent sink's
body, the envelope) and that the SDK reads back: camelCase in JSON, snake_case in Python."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    # extra="allow": a receiver built against today's shape keeps working when a later
    # version adds a field.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")
