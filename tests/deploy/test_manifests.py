"""deploy/k8s, rendered per overlay by `kubectl kustomize` (conftest.py) and checked offline.

Built-in kinds are validated against the Kubernetes OpenAPI schemas that the
`kubernetes-validate` package ships (strict: an unknown field is an error). The operators'
custom resources have no schema there: test_custom_resources.py validates them against their
CRDs' schemas, vendored in crds/. The checks (manifest_checks.py, over the lookups of
manifest_lookups.py) are hookpost's own requirements, built-in and custom kinds alike. Every
check is a function returning its problems; `test_checks_can_fail` breaks the real manifests
in one place at a time and asserts the matching check notices.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.kustomize import resource_key
from tests.deploy.manifest_checks import CHECKS, hookpost_images
from tests.deploy.manifest_lookups import (
    APP_SECRET,
    CUSTOM_RESOURCES,
    K8S_VERSIONS,
    Docs,
    all_containers,
    config,
    deployment,
    find,
    pod_spec,
    the,
)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_overlay_passes_check(rendered: dict[str, Docs], overlay: str, check: str) -> None:
    assert CHECKS[check](rendered[overlay], overlay) == []


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_builtin_kinds_match_the_kubernetes_schema(
    rendered: dict[str, Docs], overlay: str, version: str
) -> None:
    checked = 0
    for doc in rendered[overlay]:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_RESOURCES:
            continue
        # SchemaNotFoundError (an unknown kind or a removed apiVersion) fails the test too.
        kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    assert checked >= 10


def test_only_known_custom_resources(rendered: dict[str, Docs]) -> None:
    for docs in rendered.values():
        custom = {(d["apiVersion"], d["kind"]) for d in docs if "." in d["apiVersion"]}
        custom -= {(a, k) for a, k in custom if a.split("/")[0].endswith(".k8s.io")}
        assert custom == CUSTOM_RESOURCES


def test_prod_differs_from_dev_where_it_should(rendered: dict[str, Docs]) -> None:
    dev, prod = rendered["dev"], rendered["prod"]

    def sender_min(docs: Docs) -> int:
        return the(docs, "ScaledObject")["spec"]["minReplicaCount"]

    def api_min(docs: Docs) -> int:
        return the(docs, "HorizontalPodAutoscaler")["spec"]["minReplicas"]

    assert the(prod, "RabbitmqCluster")["spec"]["replicas"] == 3
    assert the(dev, "RabbitmqCluster")["spec"]["replicas"] == 1
    assert the(prod, "Cluster")["spec"]["instances"] == 3
    assert the(dev, "Cluster")["spec"]["instances"] == 1
    assert config(prod)["HOOKPOST_ENV"] == "prod"
    assert config(dev)["HOOKPOST_ENV"] == "dev"
    assert sender_min(prod) >= 2 and sender_min(prod) > sender_min(dev)
    assert api_min(prod) >= 2 and api_min(prod) > api_min(dev)
    dispatchers = [deployment(d, "dispatcher")["spec"]["replicas"] for d in (dev, prod)]
    assert dispatchers[1] > dispatchers[0] >= 1
    assert hookpost_images(prod) != hookpost_images(dev)
    # Real secrets never live in the repository; dev ships throwaway ones.
    assert find(prod, "Secret") == []
    assert [s["metadata"]["name"] for s in find(dev, "Secret")] == [APP_SECRET]
    assert set(the(dev, "Secret", APP_SECRET)["stringData"]) == {"encryption-key", "admin-token"}


def test_identities_are_unique_and_namespaced(rendered: dict[str, Docs]) -> None:
    for docs in rendered.values():
        keys = [resource_key(d) for d in docs]
        assert len(keys) == len(set(keys))
        assert the(docs, "Namespace")["metadata"]["name"] == "hookpost"


# Every check must be able to fail: break the real prod manifests in one place at a time.


def _sender_container(docs: Docs) -> dict[str, Any]:
    return pod_spec(deployment(docs, "sender"))["containers"][0]


def _sender_policy(docs: Docs) -> dict[str, Any]:
    return the(docs, "NetworkPolicy", "hookpost-webhook-egress")["spec"]


def _public_v4_rule(docs: Docs) -> dict[str, Any]:
    return next(
        r
        for r in _sender_policy(docs)["egress"]
        if r["to"][0].get("ipBlock", {}).get("cidr") == "0.0.0.0/0"
    )


def _set_env(container: dict[str, Any], name: str, entry: dict[str, Any]) -> None:
    container["env"] = [entry if e["name"] == name else e for e in container["env"]]


MUTATIONS: dict[str, tuple[str, Callable[[Docs], None], str]] = {
    "no readiness probe": (
        "workloads",
        lambda d: _sender_container(d).pop("readinessProbe"),
        "no readinessProbe",
    ),
    "liveness on /readyz": (
        "workloads",
        lambda d: _sender_container(d)["livenessProbe"]["httpGet"].update(path="/readyz"),
        "livenessProbe asks /readyz",
    ),
    "probe on the wrong port": (
        "workloads",
        lambda d: pod_spec(deployment(d, "api"))["containers"][0]["args"].__setitem__(-1, "8080"),
        "port 8080 is not declared",
    ),
    "no memory limit": (
        "workloads",
        lambda d: _sender_container(d)["resources"]["limits"].pop("memory"),
        "no limits.memory",
    ),
    "runs as root": (
        "workloads",
        lambda d: pod_spec(deployment(d, "dispatcher"))["securityContext"].update(runAsUser=0),
        "may run as root",
    ),
    "grace period too short": (
        "workloads",
        lambda d: pod_spec(deployment(d, "sender")).update(terminationGracePeriodSeconds=65),
        "terminationGracePeriodSeconds 65",
    ),
    "unknown command": (
        "workloads",
        lambda d: _sender_container(d).update(args=["senders"]),
        "not a valid command",
    ),
    "setting typo": (
        "workloads",
        lambda d: _sender_container(d)["env"].append(
            {"name": "HOOKPOST_SENDR_PREFETCH", "value": "1"}
        ),
        "HOOKPOST_SENDR_PREFETCH is no setting",
    ),
    "no migrate init container": (
        "workloads",
        lambda d: pod_spec(deployment(d, "api")).pop("initContainers"),
        "no `hookpost migrate` init container",
    ),
    "wrong CNPG secret": (
        "secrets",
        lambda d: _set_env(
            _sender_container(d),
            "HOOKPOST_DATABASE_URL",
            {
                "name": "HOOKPOST_DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": "hookpost-postgres-app", "key": "uri"}},
            },
        ),
        "is not hookpost-pg-app/uri",
    ),
    "literal encryption key": (
        "secrets",
        lambda d: _set_env(
            _sender_container(d),
            "HOOKPOST_ENCRYPTION_KEY",
            {"name": "HOOKPOST_ENCRYPTION_KEY", "value": "aG9va3Bvc3Q="},
        ),
        "HOOKPOST_ENCRYPTION_KEY is not read from a Secret",
    ),
    "AMQP URL before its parts": (
        "secrets",
        lambda d: _sender_container(d).update(
            env=sorted(_sender_container(d)["env"], key=lambda e: e["name"])
        ),
        "defined before it",
    ),
    "operator secret misnamed": (
        "secrets",
        lambda d: the(d, "RabbitmqCluster")["metadata"].update(name="rabbitmq"),
        "reads unknown secret key",
    ),
    "KEDA over amqp": (
        "sender-scaling",
        lambda d: the(d, "ScaledObject")["spec"]["triggers"][0]["metadata"].update(protocol="amqp"),
        "protocol = 'amqp'",
    ),
    "KEDA watches another queue": (
        "sender-scaling",
        lambda d: the(d, "ScaledObject")["spec"]["triggers"][0]["metadata"].update(
            queueName="hookpost.dispatcher"
        ),
        "queueName = 'hookpost.dispatcher'",
    ),
    "KEDA scales the dispatcher": (
        "sender-scaling",
        lambda d: the(d, "ScaledObject")["spec"]["scaleTargetRef"].update(
            name="hookpost-dispatcher"
        ),
        "not the sender",
    ),
    "sender replicas pinned": (
        "sender-scaling",
        lambda d: deployment(d, "sender")["spec"].update(replicas=2),
        "would fight KEDA",
    ),
    "no scale-down window": (
        "sender-scaling",
        lambda d: the(d, "ScaledObject")["spec"].pop("advanced"),
        "stabilization window 0s",
    ),
    "HPA on the wrong target": (
        "api-scaling",
        lambda d: the(d, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"].update(name="api"),
        "does not target the api Deployment",
    ),
    "no sender PDB": (
        "budgets",
        lambda d: d.remove(the(d, "PodDisruptionBudget", "hookpost-sender")),
        "sender: 0 PodDisruptionBudgets",
    ),
    "metadata service reachable": (
        "network",
        lambda d: _public_v4_rule(d)["to"][0]["ipBlock"]["except"].remove("169.254.0.0/16"),
        "reaches 169.254.0.0/16",
    ),
    "RFC 1918 partly reachable": (
        "network",
        lambda d: _public_v4_rule(d)["to"][0]["ipBlock"]["except"].__setitem__(0, "10.0.0.0/9"),
        "reaches 10.0.0.0/8",
    ),
    "public egress on any port": (
        "network",
        lambda d: _public_v4_rule(d)["ports"].append({"protocol": "TCP", "port": 80}),
        "want 443",
    ),
    "egress to everything": (
        "network",
        lambda d: _sender_policy(d)["egress"].append({"ports": [{"port": 22}]}),
        "without `to`",
    ),
    "no egress policy": (
        "network",
        lambda d: _sender_policy(d).update(policyTypes=["Ingress"]),
        "does not restrict egress",
    ),
    "dispatchers, which POST first attempts, outside the egress policy": (
        "network",
        lambda d: deployment(d, "dispatcher")["spec"]["template"]["metadata"]["labels"].pop(
            "hookpost.io/webhook-egress"
        ),
        "0 NetworkPolicies select the dispatcher pods",
    ),
    "one RabbitMQ node in prod": (
        "datastores",
        lambda d: the(d, "RabbitmqCluster")["spec"].update(replicas=1),
        "RabbitmqCluster replicas 1",
    ),
    "aggregated RabbitMQ metrics": (
        "datastores",
        lambda d: the(d, "RabbitmqCluster")["spec"]["rabbitmq"].pop("additionalConfig"),
        "per-object metrics",
    ),
    "no consistent-hash exchange for the shards": (
        "datastores",
        lambda d: the(d, "RabbitmqCluster")["spec"]["rabbitmq"]["additionalPlugins"].remove(
            "rabbitmq_consistent_hash_exchange"
        ),
        "without the consistent-hash exchange",
    ),
    "one PostgreSQL instance in prod": (
        "datastores",
        lambda d: the(d, "Cluster")["spec"].pop("instances"),
        "CNPG Cluster instances 1",
    ),
    "unlabelled resource": (
        "labels",
        lambda d: the(d, "Service", "hookpost-api")["metadata"]["labels"].clear(),
        "no app.kubernetes.io/part-of",
    ),
    "latest in prod": (
        "images",
        lambda d: [
            c.update(image="ghcr.io/hookpost/hookpost:latest")
            for c in all_containers(deployment(d, "api"))
        ],
        "services run different images",
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_checks_can_fail(rendered: dict[str, Docs], mutation: str) -> None:
    check, mutate, expected = MUTATIONS[mutation]
    docs = copy.deepcopy(rendered["prod"])
    assert CHECKS[check](docs, "prod") == []
    mutate(docs)
    problems = CHECKS[check](docs, "prod")
    assert any(expected in p for p in problems), problems


def test_schema_validation_can_fail(rendered: dict[str, Docs]) -> None:
    api = copy.deepcopy(deployment(rendered["prod"], "api"))
    pod_spec(api)["containers"][0]["readinessProbes"] = {}  # a typo: strict schemas refuse it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, K8S_VERSIONS[0], strict=True)
