"""Settings of the peer: its own database and its own queue names, from the environment
benchmarks/phases/peer.py gives it (PEER_DATABASE_URL, PEER_AMQP_URL, PEER_PREFIX)."""

import os
from urllib.parse import urlsplit

_db = urlsplit(os.environ["PEER_DATABASE_URL"])
_prefix = os.environ["PEER_PREFIX"]  # every broker object the peer declares starts with it

SECRET_KEY = "bench-only"  # not a secret: a bench on 127.0.0.1
DEBUG = False  # DEBUG keeps every query in memory: no production server runs it
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "peerproj.urls"
WSGI_APPLICATION = "peerproj.wsgi.application"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django_webhook", "orders"]
MIDDLEWARE: list[str] = []  # an API view: no sessions, CSRF or auth in its way
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.path.lstrip("/"),
        "USER": _db.username,
        "PASSWORD": _db.password,
        "HOST": _db.hostname,
        "PORT": _db.port or 5432,
        # persistent connections, as a production deployment runs: without them every
        # request and every Celery task would open one (Django's default, CONN_MAX_AGE=0)
        "CONN_MAX_AGE": 600,
    }
}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}

DJANGO_WEBHOOK = {
    "MODELS": ["orders.Order", "orders.FanoutOrder"],
    # The receiver matches a delivery to its request by a top-level "eventId"; django-webhook
    # nests the instance under "object", so its documented encoder setting lifts it up.
    "PAYLOAD_ENCODER_CLASS": "orders.encoder.EventIdFirst",
}

CELERY_BROKER_URL = os.environ["PEER_AMQP_URL"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The peer's queue, exchanges and pidbox under its own prefix: it never touches hookpost's.
CELERY_TASK_DEFAULT_QUEUE = _prefix
CELERY_CONTROL_EXCHANGE = _prefix
CELERY_EVENT_EXCHANGE = f"{_prefix}.ev"
CELERY_TASK_IGNORE_RESULT = True  # no result backend: django-webhook reads no results
