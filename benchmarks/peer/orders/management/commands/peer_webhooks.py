"""`django-admin peer_webhooks <receiver-url>`: the webhooks the bench drives, each with a
signing secret (django-webhook signs with every secret of a webhook)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django_webhook.models import Webhook, WebhookSecret, WebhookTopic

# (topic, how many webhooks, the receiver group their URLs are under)
SUBSCRIBED = (("orders.Order/create", 1, "peer1"), ("orders.FanoutOrder/create", 10, "peerfan"))


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("receiver")

    def handle(self, *args: Any, **options: Any) -> None:
        for topic_name, count, group in SUBSCRIBED:
            topic = WebhookTopic.objects.get(name=topic_name)
            for n in range(count):
                webhook = Webhook.objects.create(url=f"{options['receiver']}/{group}/{n}")
                webhook.topics.set([topic])
                WebhookSecret.objects.create(webhook=webhook, token=f"bench-secret-{group}-{n}")
