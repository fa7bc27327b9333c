"""docs/asyncapi.yaml is what the code generates, and says what the code does."""

from __future__ import annotations

from pathlib import Path

import yaml

from libs.domain.event_types import CATALOGUE
from libs.infra.broker.asyncapi import DOCUMENTED_PREFIX, build_document
from libs.infra.broker.messages import EventMessage
from libs.infra.broker.topology import Topology

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def test_the_committed_document_is_up_to_date() -> None:
    assert COMMITTED.read_text() == build_document(), (
        "docs/asyncapi.yaml is stale: python -m libs.infra.broker.asyncapi > docs/asyncapi.yaml"
    )


def test_the_document_names_the_exchange_routing_keys_queue_and_schema() -> None:
    doc = yaml.safe_load(COMMITTED.read_text())
    topology = Topology(DOCUMENTED_PREFIX)
    assert doc["asyncapi"].startswith("3.")
    channels = doc["channels"].values()
    sends = {
        c["address"]: c["bindings"]["amqp"]["exchange"] for c in channels if c["address"] != "#"
    }
    producible = {t.value for t, i in CATALOGUE.items() if i.subscribable and i.producible}
    assert set(sends) == producible
    for exchange in sends.values():
        assert exchange["name"] == topology.events_exchange.name
        assert exchange["type"] == "topic" and exchange["durable"] is True
    [receive] = [c for c in channels if c["address"] == "#"]
    assert receive["bindings"]["amqp"]["queue"]["name"] == topology.dispatcher_queue.name

    schema = doc["components"]["schemas"]["EventMessage"]
    wire = EventMessage.model_json_schema(by_alias=True)
    assert set(schema["properties"]) == set(wire["properties"])
    assert set(schema["required"]) == {"id", "organizationId", "type", "createdAt"}
    assert "traceparent" in doc["info"]["description"]
