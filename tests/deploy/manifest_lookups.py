"""What the manifest checks look up in rendered manifests (test_manifests.py): the
requirements' constants and the lookups over a list of resources."""

from __future__ import annotations

import ipaddress
from typing import Any

import kubernetes_validate

from libs.infra.settings import Settings
from tests.deploy.crd_schemas import VENDORED
from tests.deploy.kustomize import Resource

Docs = list[Resource]
Problems = list[str]

# The Kubernetes versions the manifests must be valid for: the oldest we support, the newest
# the schema package knows (catches removed APIs).
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())
# (apiVersion, kind) of the operators' resources: exactly those with a vendored CRD.
CUSTOM_RESOURCES = set(VENDORED)
EXPECTED_SIZE = {"dev": 1, "prod": 3}  # RabbitMQ nodes and PostgreSQL instances
COMPONENTS = ("api", "dispatcher", "sender")
APP_SECRET = "hookpost-secrets"
SETTINGS_ENV = {f"HOOKPOST_{name.upper()}" for name in Settings.model_fields}
FORBIDDEN_NETWORKS = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    )
]


def find(docs: Docs, kind: str, name: str | None = None) -> list[Resource]:
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def the(docs: Docs, kind: str, name: str | None = None) -> Resource:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def config(docs: Docs) -> dict[str, str]:
    return the(docs, "ConfigMap", "hookpost-config")["data"]


def deployment(docs: Docs, component: str) -> Resource:
    return the(docs, "Deployment", f"hookpost-{component}")


def pod_spec(workload: Resource) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def all_containers(workload: Resource) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def secret_ref(entry: dict[str, Any] | None) -> tuple[str, str] | None:
    ref = ((entry or {}).get("valueFrom") or {}).get("secretKeyRef")
    return (ref["name"], ref["key"]) if ref else None


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def quantity(value: str | int | float) -> float:
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6}
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def rabbitmq_name(docs: Docs) -> str:
    return the(docs, "RabbitmqCluster")["metadata"]["name"]


def postgres_name(docs: Docs) -> str:
    return the(docs, "Cluster")["metadata"]["name"]


def shutdown_budget_s(docs: Docs) -> float:
    data, defaults = config(docs), Settings.model_fields
    timeout = float(data.get("HOOKPOST_SEND_TIMEOUT_S", defaults["send_timeout_s"].default))
    grace = float(data.get("HOOKPOST_SHUTDOWN_GRACE_S", defaults["shutdown_grace_s"].default))
    return timeout + grace
