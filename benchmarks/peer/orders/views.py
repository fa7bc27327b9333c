"""POST /<shape>/api/v1/events: the bench's load generator's request, answered as hookpost's
api answers it (202 and the eventId); saving the instance fires django-webhook's signal."""

import json
import uuid

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_POST

from orders.models import FanoutOrder, Order

MODELS = {"single": Order, "fanout": FanoutOrder}


def ready(_: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@require_POST
def create_event(request: HttpRequest, shape: str) -> HttpResponse:
    model = MODELS.get(shape)
    if model is None:
        return JsonResponse({"error": f"unknown shape {shape!r}"}, status=404)
    try:
        data = json.loads(request.body)["data"]
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "a JSON body with data"}, status=400)
    event_id = f"evt_{uuid.uuid4().hex}"
    model.objects.create(event_id=event_id, data=data)
    return JsonResponse({"eventId": event_id}, status=202)
