"""The peer's Django project: django-webhook on Celery, as its docs set it up.

Importing the Celery app here makes it the current app in gunicorn's workers too, so that
`fire_webhook.delay()` in the model's signal publishes to the peer's own queue.
"""

from peerproj.celery import app

__all__ = ["app"]
