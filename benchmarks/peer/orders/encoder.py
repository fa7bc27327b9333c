from typing import Any

from django.core.serializers.json import DjangoJSONEncoder


class EventIdFirst(DjangoJSONEncoder):
    """django-webhook's payload with the instance's event_id also at the top, as "eventId"."""

    def encode(self, o: Any) -> str:
        if isinstance(o, dict) and isinstance(o.get("object"), dict):
            o = {"eventId": o["object"].get("event_id"), **o}
        return super().encode(o)
