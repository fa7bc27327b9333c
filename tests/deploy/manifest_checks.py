"""hookpost's own requirements of its manifests, built-in and custom kinds alike: each check
is a function returning its problems, [] when nothing is wrong (test_manifests.py runs them
and breaks the manifests to prove each can fail)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from cli.main import build_parser
from libs.infra.broker.topology import Topology
from libs.infra.settings import Settings
from tests.deploy.manifest_lookups import (
    APP_SECRET,
    COMPONENTS,
    EXPECTED_SIZE,
    FORBIDDEN_NETWORKS,
    SETTINGS_ENV,
    Docs,
    Problems,
    all_containers,
    config,
    deployment,
    env_of,
    find,
    labels_match,
    pod_spec,
    postgres_name,
    quantity,
    rabbitmq_name,
    secret_ref,
    shutdown_budget_s,
    the,
)


def check_workloads(docs: Docs) -> Problems:
    problems: Problems = []
    ops_port = int(config(docs).get("HOOKPOST_OPS_PORT", Settings.model_fields["ops_port"].default))
    for component in COMPONENTS:
        found = find(docs, "Deployment", f"hookpost-{component}")
        if len(found) != 1:
            problems.append(f"no Deployment hookpost-{component}")
            continue
        workload = found[0]
        where = f"Deployment {component}"
        template_labels = workload["spec"]["template"]["metadata"].get("labels", {})
        if not labels_match(workload["spec"]["selector"].get("matchLabels", {}), template_labels):
            problems.append(f"{where}: selector does not match the pod template labels")
        if template_labels.get("app.kubernetes.io/component") != component:
            problems.append(f"{where}: pod template lacks app.kubernetes.io/component")
        spec = pod_spec(workload)
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace <= shutdown_budget_s(docs):
            problems.append(
                f"{where}: terminationGracePeriodSeconds {grace} <= send timeout + shutdown "
                f"grace {shutdown_budget_s(docs)}"
            )
        pod_security = spec.get("securityContext", {})
        for container in all_containers(workload):
            name = f"{where}/{container['name']}"
            security = {**pod_security, **container.get("securityContext", {})}
            if security.get("runAsNonRoot") is not True or security.get("runAsUser", 1) == 0:
                problems.append(f"{name}: may run as root")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: allows privilege escalation")
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(bound, {}):
                        problems.append(f"{name}: no {bound}.{resource}")
            for resource in ("cpu", "memory"):
                request = resources.get("requests", {}).get(resource)
                limit = resources.get("limits", {}).get(resource)
                if request and limit and quantity(request) > quantity(limit):
                    problems.append(f"{name}: {resource} request above its limit")
            for variable in env_of(container):
                if variable.startswith("HOOKPOST_") and variable not in SETTINGS_ENV:
                    problems.append(f"{name}: {variable} is no setting")
        init = {c["name"]: c for c in spec.get("initContainers", [])}
        if init.get("migrate", {}).get("args") != ["migrate"]:
            problems.append(f"{where}: no `hookpost migrate` init container")
        main = [c for c in spec["containers"] if c["name"] == component]
        if len(main) != 1:
            problems.append(f"{where}: no container named {component}")
            continue
        problems += _check_main_container(where, component, main[0], ops_port)
    return problems


def _check_main_container(
    where: str, component: str, container: dict[str, Any], ops_port: int
) -> Problems:
    problems: Problems = []
    args = container.get("args", [])
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit:
        return [f"{where}: `hookpost {' '.join(args)}` is not a valid command"]
    if parsed.command != component:
        problems.append(f"{where}: runs `hookpost {parsed.command}`")
    expected_port = parsed.port if component == "api" else ops_port
    if component == "api" and parsed.host != "0.0.0.0":
        problems.append(f"{where}: the api listens on {parsed.host}, unreachable from the pod IP")
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    if expected_port not in ports.values():
        problems.append(f"{where}: port {expected_port} is not declared")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        http = container.get(probe, {}).get("httpGet")
        if not http:
            problems.append(f"{where}: no {probe}")
            continue
        if http.get("path") != path:
            problems.append(f"{where}: {probe} asks {http.get('path')}, not {path}")
        port = ports.get(http["port"], http["port"])
        if port != expected_port:
            problems.append(f"{where}: {probe} on port {port}, service listens on {expected_port}")
    return problems


def check_migrations_job(docs: Docs) -> Problems:
    jobs = find(docs, "Job", "hookpost-migrate")
    if len(jobs) != 1:
        return ["no migrations Job hookpost-migrate"]
    spec = pod_spec(jobs[0])
    problems: Problems = []
    if spec.get("restartPolicy") not in {"OnFailure", "Never"}:
        problems.append("migrations Job: bad restartPolicy")
    if [c.get("args") for c in spec["containers"]] != [["migrate"]]:
        problems.append("migrations Job: does not run `hookpost migrate`")
    security = {
        **spec.get("securityContext", {}),
        **spec["containers"][0].get("securityContext", {}),
    }
    if security.get("runAsNonRoot") is not True:
        problems.append("migrations Job: may run as root")
    return problems


def check_secrets_and_urls(docs: Docs) -> Problems:
    """Secret names and keys are the operators' conventions; URLs are built from them."""
    rabbit, postgres = rabbitmq_name(docs), postgres_name(docs)
    allowed = {
        f"{rabbit}-default-user": {"username", "password", "host", "port"},
        f"{postgres}-app": {"uri", "username", "password", "host", "port", "dbname"},
        APP_SECRET: {"encryption-key", "admin-token"},
    }
    problems: Problems = []
    workloads = [*find(docs, "Deployment"), *find(docs, "Job")]
    for workload in workloads:
        for container in all_containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            env = env_of(container)
            for entry in env.values():
                ref = secret_ref(entry)
                if ref and ref[1] not in allowed.get(ref[0], set()):
                    problems.append(f"{where}: {entry['name']} reads unknown secret key {ref}")
            for secret in ("HOOKPOST_ENCRYPTION_KEY", "HOOKPOST_ADMIN_TOKEN"):
                if secret in env and secret_ref(env[secret]) is None:
                    problems.append(f"{where}: {secret} is not read from a Secret")
            if "HOOKPOST_DATABASE_URL" in env or container["name"] == "migrate":
                if secret_ref(env.get("HOOKPOST_DATABASE_URL")) != (f"{postgres}-app", "uri"):
                    problems.append(f"{where}: HOOKPOST_DATABASE_URL is not {postgres}-app/uri")
            if container["name"] in COMPONENTS:
                problems += _check_amqp_url(where, container, f"{rabbit}-default-user")
    for name, needs in (
        ("api", {"HOOKPOST_ENCRYPTION_KEY", "HOOKPOST_ADMIN_TOKEN"}),
        ("sender", {"HOOKPOST_ENCRYPTION_KEY"}),
    ):
        for workload in find(docs, "Deployment", f"hookpost-{name}"):
            env = env_of(pod_spec(workload)["containers"][0])
            for variable in needs - set(env):
                problems.append(f"{name}: no {variable}")
    leaked = {k for k in config(docs) if "KEY" in k or "TOKEN" in k or "PASS" in k}
    problems += [f"ConfigMap holds secret-looking {k}" for k in sorted(leaked)]
    return problems


def _check_amqp_url(where: str, container: dict[str, Any], secret: str) -> Problems:
    entries = container.get("env", [])
    names = [e["name"] for e in entries]
    if "HOOKPOST_AMQP_URL" not in names:
        return [f"{where}: no HOOKPOST_AMQP_URL"]
    position = names.index("HOOKPOST_AMQP_URL")
    value = entries[position].get("value", "")
    match = re.fullmatch(r"amqp://\$\((\w+)\):\$\((\w+)\)@\$\((\w+)\):5672/", value)
    if not match:
        return [f"{where}: HOOKPOST_AMQP_URL {value!r} is not amqp://$(USER):$(PASS)@$(HOST):5672/"]
    problems: Problems = []
    earlier = {e["name"]: e for e in entries[:position]}  # $(VAR) expands earlier entries only
    for variable, key in zip(match.groups(), ("username", "password", "host"), strict=True):
        if secret_ref(earlier.get(variable)) != (secret, key):
            problems.append(f"{where}: $({variable}) is not {secret}/{key} defined before it")
    return problems


def check_sender_scaling(docs: Docs) -> Problems:
    problems: Problems = []
    data = config(docs)
    queues = Topology(data.get("HOOKPOST_BROKER_PREFIX", "hookpost"), sender_shards=4)
    scaled = find(docs, "ScaledObject")
    if len(scaled) != 1:
        return ["no single ScaledObject"]
    spec = scaled[0]["spec"]
    target = spec["scaleTargetRef"]
    if target.get("kind", "Deployment") != "Deployment" or not find(
        docs, "Deployment", target["name"]
    ):
        problems.append(f"ScaledObject targets {target}, not a Deployment here")
    elif target["name"] != "hookpost-sender":
        problems.append(f"ScaledObject scales {target['name']}, not the sender")
    if "replicas" in deployment(docs, "sender")["spec"]:
        problems.append("the sender Deployment sets replicas: it would fight KEDA")
    low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if not 1 <= low < high:
        problems.append(f"sender replicas {low}..{high}: need 1 <= min < max")
    behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
    window = (behavior or {}).get("scaleDown", {}).get("stabilizationWindowSeconds", 0)
    if window < 300:
        problems.append(f"sender scale-down stabilization window {window}s < 300s")
    triggers = spec.get("triggers", [])
    if len(triggers) != 1 or triggers[0].get("type") != "rabbitmq":
        return [*problems, "ScaledObject needs exactly one rabbitmq trigger"]
    metadata = triggers[0]["metadata"]
    expected = {
        "protocol": "http",  # counts unacked (in-flight) messages too
        "mode": "QueueLength",
        "queueName": queues.sender_queues_pattern,  # the one queue, or every shard
        "useRegex": "true",
        "operation": "sum",
        "vhostName": "/",
        "value": str(data.get("HOOKPOST_SENDER_PREFETCH", "600")),
    }
    for field, want in expected.items():
        if metadata.get(field) != want:
            problems.append(f"rabbitmq trigger {field} = {metadata.get(field)!r}, want {want!r}")
    if "host" in metadata:
        problems.append("rabbitmq trigger has an inline host: credentials belong in a Secret")
    auth = triggers[0].get("authenticationRef", {}).get("name")
    auths = find(docs, "TriggerAuthentication", auth)
    if not auths:
        problems.append(f"no TriggerAuthentication {auth}")
    elif [r.get("parameter") for r in auths[0]["spec"].get("secretTargetRef", [])] != ["host"]:
        problems.append("TriggerAuthentication must read `host` (the management URL) from a Secret")
    return problems


def check_api_scaling_and_service(docs: Docs) -> Problems:
    problems: Problems = []
    api = deployment(docs, "api")
    labels = api["spec"]["template"]["metadata"]["labels"]
    if "replicas" in api["spec"]:
        problems.append("the api Deployment sets replicas: it would fight its HPA")
    hpa = find(docs, "HorizontalPodAutoscaler", "hookpost-api")
    if not hpa:
        problems.append("no HPA for the api")
    else:
        spec = hpa[0]["spec"]
        if spec["scaleTargetRef"] != {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "hookpost-api",
        }:
            problems.append("the api HPA does not target the api Deployment")
        if not any(m.get("resource", {}).get("name") == "cpu" for m in spec.get("metrics", [])):
            problems.append("the api HPA does not scale on CPU")
        if not 1 <= spec.get("minReplicas", 1) < spec["maxReplicas"]:
            problems.append("the api HPA needs 1 <= minReplicas < maxReplicas")
    services = [s for s in find(docs, "Service") if labels_match(s["spec"]["selector"], labels)]
    if len(services) != 1:
        problems.append("no Service selects the api pods")
    else:
        container = pod_spec(api)["containers"][0]
        ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
        for port in services[0]["spec"]["ports"]:
            if port["targetPort"] not in {*ports, *ports.values()}:
                problems.append(f"api Service targets {port['targetPort']}, no such port")
    return problems


def check_disruption_budgets(docs: Docs) -> Problems:
    problems: Problems = []
    budgets = find(docs, "PodDisruptionBudget")
    for component in COMPONENTS:
        labels = deployment(docs, component)["spec"]["template"]["metadata"]["labels"]
        matching = [
            b for b in budgets if labels_match(b["spec"]["selector"]["matchLabels"], labels)
        ]
        if len(matching) != 1:
            problems.append(f"{component}: {len(matching)} PodDisruptionBudgets, want 1")
        elif matching[0]["spec"].get("maxUnavailable", 0) < 1:
            # minAvailable would block every node drain of a one-replica (dev) install.
            problems.append(f"{component}: PodDisruptionBudget must allow maxUnavailable >= 1")
    return problems


# The pods that POST to customer URLs: senders, and dispatchers (their own first attempts).
WEBHOOK_POSTERS = ("sender", "dispatcher")


def check_webhook_egress_policies(docs: Docs) -> Problems:
    problems: Problems = []
    for component in WEBHOOK_POSTERS:
        problems += [f"{component}: {p}" for p in check_sender_network_policy(docs, component)]
    return problems


def check_sender_network_policy(docs: Docs, component: str = "sender") -> Problems:
    pod_labels = deployment(docs, component)["spec"]["template"]["metadata"]["labels"]
    policies = [
        p
        for p in find(docs, "NetworkPolicy")
        if labels_match(p["spec"]["podSelector"].get("matchLabels", {}), pod_labels)
    ]
    if len(policies) != 1:
        return [f"{len(policies)} NetworkPolicies select the {component} pods, want 1"]
    spec = policies[0]["spec"]
    problems: Problems = []
    if "Egress" not in spec.get("policyTypes", []):
        problems.append("sender NetworkPolicy does not restrict egress")
    rabbit, postgres = rabbitmq_name(docs), postgres_name(docs)
    reached: set[str] = set()
    for rule in spec.get("egress", []):
        ports = {(p.get("protocol", "TCP"), p.get("port")) for p in rule.get("ports", [])}
        if not rule.get("to"):
            problems.append("an egress rule without `to` allows every destination")
            continue
        if not ports:
            problems.append("an egress rule without ports allows every port")
        for peer in rule["to"]:
            pods = (peer.get("podSelector") or {}).get("matchLabels", {})
            namespaces = (peer.get("namespaceSelector") or {}).get("matchLabels", {})
            if "ipBlock" in peer:
                block = peer["ipBlock"]
                network = ipaddress.ip_network(block["cidr"])
                excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
                for forbidden in FORBIDDEN_NETWORKS:
                    if forbidden.version != network.version or not network.overlaps(forbidden):
                        continue
                    if not any(forbidden.subnet_of(e) for e in excepted):
                        problems.append(f"sender egress to {network} reaches {forbidden}")
                if ports != {("TCP", 443)}:
                    problems.append(f"sender egress to {network} on {sorted(ports)}, want 443")
                reached.add(f"ipv{network.version}")
            elif pods == {"app.kubernetes.io/name": rabbit} and not namespaces:
                reached.add("rabbitmq")
                if ports != {("TCP", 5672)}:
                    problems.append(f"sender egress to RabbitMQ on {sorted(ports)}")
            elif pods == {"cnpg.io/cluster": postgres} and not namespaces:
                reached.add("postgres")
                if ports != {("TCP", 5432)}:
                    problems.append(f"sender egress to PostgreSQL on {sorted(ports)}")
            elif pods.get("k8s-app") == "kube-dns":
                reached.add("dns")
                if ports != {("UDP", 53), ("TCP", 53)}:
                    problems.append("sender egress to DNS must be UDP and TCP 53")
            elif namespaces.get("kubernetes.io/metadata.name") and not pods:
                pass  # one named namespace (the OpenTelemetry collector's), ports checked above
            else:
                problems.append(f"sender egress to an unexpected peer {peer}")
    for needed in ("rabbitmq", "postgres", "dns", "ipv4"):
        if needed not in reached:
            problems.append(f"sender NetworkPolicy does not let senders reach {needed}")
    return problems


def check_datastores(docs: Docs, overlay: str) -> Problems:
    problems: Problems = []
    rabbit = the(docs, "RabbitmqCluster")["spec"]
    if rabbit.get("replicas", 1) != EXPECTED_SIZE[overlay]:
        problems.append(f"{overlay}: RabbitmqCluster replicas {rabbit.get('replicas', 1)}")
    plugins = rabbit.get("rabbitmq", {}).get("additionalPlugins", [])
    if "rabbitmq_prometheus" not in plugins:
        problems.append("RabbitMQ without rabbitmq_prometheus: the queue-depth alert has no data")
    if "rabbitmq_consistent_hash_exchange" not in plugins:
        problems.append("RabbitMQ without the consistent-hash exchange: no sharded work queues")
    if "prometheus.return_per_object_metrics = true" not in rabbit.get("rabbitmq", {}).get(
        "additionalConfig", ""
    ):
        problems.append("RabbitMQ without per-object metrics: the alert needs the queue label")
    postgres = the(docs, "Cluster")["spec"]
    if postgres.get("instances", 1) != EXPECTED_SIZE[overlay]:
        problems.append(f"{overlay}: CNPG Cluster instances {postgres.get('instances', 1)}")
    if not postgres.get("bootstrap", {}).get("initdb", {}).get("database"):
        problems.append("CNPG Cluster creates no application database")
    return problems


def check_labels(docs: Docs) -> Problems:
    problems: Problems = []
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        where = f"{doc['kind']} {doc['metadata']['name']}"
        if labels.get("app.kubernetes.io/part-of") != "hookpost":
            problems.append(f"{where}: no app.kubernetes.io/part-of=hookpost")
        if not labels.get("app.kubernetes.io/name"):
            problems.append(f"{where}: no app.kubernetes.io/name")
        if doc["kind"] not in {"Namespace", "ConfigMap", "Secret", "ServiceAccount"} and not (
            labels.get("app.kubernetes.io/component")
        ):
            problems.append(f"{where}: no app.kubernetes.io/component")
        if doc["kind"] != "Namespace" and doc["metadata"].get("namespace") != "hookpost":
            problems.append(f"{where}: not in namespace hookpost")
    return problems


def hookpost_images(docs: Docs) -> set[str]:
    return {
        c["image"]
        for d in [*find(docs, "Deployment"), *find(docs, "Job")]
        for c in all_containers(d)
    }


def split_image(image: str) -> tuple[str, str]:
    """'repo/name:tag' → ('repo/name', ':tag'); 'name@sha256:…' → ('name', '@sha256:…')."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, "@" + digest
    slash, colon = image.rfind("/"), image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def check_images(docs: Docs, overlay: str) -> Problems:
    images = hookpost_images(docs)
    if len(images) != 1:
        return [f"{overlay}: services run different images {sorted(images)}"]
    name, suffix = split_image(images.pop())
    if overlay == "prod" and (suffix in {"", ":latest", ":dev"} or "/" not in name):
        return [f"prod runs {name}{suffix}: pin a registry image and version"]
    return []


CHECKS: dict[str, Callable[[Docs, str], Problems]] = {
    "workloads": lambda docs, _: check_workloads(docs),
    "migrations": lambda docs, _: check_migrations_job(docs),
    "secrets": lambda docs, _: check_secrets_and_urls(docs),
    "sender-scaling": lambda docs, _: check_sender_scaling(docs),
    "api-scaling": lambda docs, _: check_api_scaling_and_service(docs),
    "budgets": lambda docs, _: check_disruption_budgets(docs),
    "network": lambda docs, _: check_webhook_egress_policies(docs),
    "datastores": check_datastores,
    "labels": lambda docs, _: check_labels(docs),
    "images": check_images,
}
