"""The models whose creation django-webhook turns into webhooks: one subscribed by one
webhook, one by ten (the bench's 1-endpoint and fan-out runs, each with its own topic)."""

from django.db import models


class Order(models.Model):
    event_id = models.CharField(max_length=40, unique=True)
    data = models.JSONField()


class FanoutOrder(models.Model):
    event_id = models.CharField(max_length=40, unique=True)
    data = models.JSONField()
