"""The Celery app, configured from Django's settings (Celery's "first steps with Django")."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerproj.settings")

app = Celery("peerproj")
app.config_from_object("django.conf:settings", namespace="CELERY")
