"""A small, pure-Python subset of `kustomize build`, so the manifest tests run offline anywhere.

Real kustomize is a Go binary that no Python package ships for Python 3.11 and Debian's
kubectl (1.20) embeds a kustomize too old for `labels`. This renders exactly the features
deploy/k8s uses and REFUSES everything else (an unknown kustomization field, a `$patch`
directive, a label selector on a patch target), so it can never silently render something
different from kustomize. Where a kustomize >= 5 is installed (`kustomize` or `kubectl`),
tests/deploy/test_kustomize_lite.py checks that both render the overlays identically.

Supported, in kustomize's order of application:

- `resources`: YAML files (multi-document) and directories holding a kustomization (rendered
  first, recursively);
- `patches`: strategic merge patches (`path:` or inline `patch:`, optional `target:`) and
  JSON 6902 patches (a YAML/JSON list of operations, `target:` required). Strategic merge
  merges maps, deletes keys set to null, merges the lists Kubernetes merges by key
  (containers and initContainers by `name`, env, volumes, volumeMounts, ports) for built-in
  kinds, and replaces every other list (as kustomize does for custom resources);
- `namespace`: set on every namespaced resource;
- `labels`: `pairs` on metadata, and on pod templates with `includeTemplates: true`
  (`includeSelectors: true` is refused: it rewrites selectors);
- `replicas`: `spec.replicas` of the named Deployment/StatefulSet/ReplicaSet;
- `images`: `newName`, `newTag`, `digest` of every container and init container whose image
  name matches.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "patches",
    "replicas",
    "images",
}
CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
    "ClusterTriggerAuthentication",
}
POD_TEMPLATE_KINDS = {
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "ReplicationController",
}
REPLICATED_KINDS = {"Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"}
BUILTIN_GROUPS = {"", "apps", "batch", "policy", "autoscaling"}


class KustomizeError(Exception):
    """The kustomization uses something this subset does not implement, or is wrong."""


def render(directory: str | Path) -> list[Resource]:
    """Render the kustomization in `directory` like `kustomize build` (order: resources)."""
    root = Path(directory)
    kustomization = _load_kustomization(root)
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise KustomizeError(f"{root}: unsupported kustomization fields {sorted(unknown)}")

    resources: list[Resource] = []
    for entry in kustomization.get("resources") or []:
        path = (root / entry).resolve()
        if path.is_dir():
            resources.extend(render(path))
        elif path.is_file():
            resources.extend(_load_documents(path))
        else:
            raise KustomizeError(f"{root}: resource {entry!r} not found")
    _check_unique(resources)

    for patch in kustomization.get("patches") or []:
        _apply_patch(root, resources, patch)
    if kustomization.get("namespace"):
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED_KINDS:
                resource.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    for labels in kustomization.get("labels") or []:
        _apply_labels(resources, labels)
    for replicas in kustomization.get("replicas") or []:
        _apply_replicas(resources, replicas)
    for image in kustomization.get("images") or []:
        _apply_image(resources, image)
    _check_unique(resources)
    return resources


def resource_key(resource: Resource) -> tuple[str, str, str, str]:
    """(group, kind, namespace, name): what kustomize considers one resource's identity."""
    group = _group_version(resource["apiVersion"])[0]
    metadata = resource.get("metadata") or {}
    return group, resource["kind"], metadata.get("namespace", ""), metadata["name"]


# loading


def _load_kustomization(root: Path) -> dict[str, Any]:
    for name in KUSTOMIZATION_FILES:
        if (root / name).is_file():
            loaded = yaml.safe_load((root / name).read_text(encoding="utf-8")) or {}
            if loaded.get("kind", "Kustomization") != "Kustomization":
                raise KustomizeError(f"{root / name}: not a Kustomization")
            return loaded
    raise KustomizeError(f"{root}: no kustomization file")


def _load_documents(path: Path) -> list[Resource]:
    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    for document in documents:
        if not isinstance(document, dict) or not {"apiVersion", "kind"} <= set(document):
            raise KustomizeError(f"{path}: a document without apiVersion and kind")
        if not (document.get("metadata") or {}).get("name"):
            raise KustomizeError(f"{path}: a {document['kind']} without metadata.name")
    return documents


def _check_unique(resources: Iterable[Resource]) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for resource in resources:
        key = resource_key(resource)
        if key in seen:
            raise KustomizeError(f"duplicate resource {key}")
        seen.add(key)


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _is_builtin(resource: Resource) -> bool:
    group = _group_version(resource["apiVersion"])[0]
    return group in BUILTIN_GROUPS or group.endswith(".k8s.io")


# patches


def _apply_patch(root: Path, resources: list[Resource], entry: dict[str, Any]) -> None:
    unknown = set(entry) - {"path", "patch", "target"}
    if unknown:
        raise KustomizeError(f"{root}: unsupported patch fields {sorted(unknown)}")
    if ("path" in entry) == ("patch" in entry):
        raise KustomizeError(f"{root}: a patch needs exactly one of path and patch")
    text = (root / entry["path"]).read_text("utf-8") if "path" in entry else entry["patch"]
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    target = entry.get("target")

    if len(documents) == 1 and isinstance(documents[0], list):
        if not target:
            raise KustomizeError(f"{root}: a JSON 6902 patch needs a target")
        matches = _select(resources, target)
        for resource in matches:
            _apply_json6902(resource, documents[0])
        return

    for document in documents:
        if not isinstance(document, dict) or "kind" not in document:
            raise KustomizeError(f"{root}: a strategic merge patch must be a resource")
        selector = target or {
            "group": _group_version(document["apiVersion"])[0],
            "version": _group_version(document["apiVersion"])[1],
            "kind": document["kind"],
            "name": document["metadata"]["name"],
        }
        body = copy.deepcopy(document)
        body["metadata"] = {
            k: v for k, v in (body.get("metadata") or {}).items() if k not in {"name", "namespace"}
        }
        for resource in _select(resources, selector):
            _strategic_merge(resource, body, builtin=_is_builtin(resource))


def _select(resources: list[Resource], target: dict[str, Any]) -> list[Resource]:
    unknown = set(target) - {"group", "version", "kind", "name", "namespace"}
    if unknown:
        raise KustomizeError(f"unsupported patch target fields {sorted(unknown)}")
    matches = []
    for resource in resources:
        group, version = _group_version(resource["apiVersion"])
        metadata = resource.get("metadata") or {}
        actual = {
            "group": group,
            "version": version,
            "kind": resource["kind"],
            "name": metadata.get("name", ""),
            "namespace": metadata.get("namespace", ""),
        }
        if all(re.fullmatch(str(want), actual[field]) for field, want in target.items()):
            matches.append(resource)
    if not matches:
        raise KustomizeError(f"patch target {target} matches no resource")
    return matches


MERGE_KEYS = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "imagePullSecrets": ("name",),
    "ports": ("containerPort", "port"),  # container ports, service ports
}


def _strategic_merge(target: dict[str, Any], patch: dict[str, Any], *, builtin: bool) -> None:
    for key, value in patch.items():
        if isinstance(key, str) and key.startswith("$"):
            raise KustomizeError(f"unsupported strategic merge directive {key}")
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _strategic_merge(target[key], value, builtin=builtin)
        elif (
            builtin
            and isinstance(value, list)
            and isinstance(target.get(key), list)
            and key in MERGE_KEYS
        ):
            target[key] = _merge_list(target[key], value, MERGE_KEYS[key], builtin=builtin)
        else:
            target[key] = copy.deepcopy(value)


def _merge_list(
    current: list[Any], patch: list[Any], candidates: tuple[str, ...], *, builtin: bool
) -> list[Any]:
    items = [*current, *patch]
    key = next((c for c in candidates if all(isinstance(i, dict) and c in i for i in items)), None)
    if key is None:
        raise KustomizeError(f"cannot merge list by any of {candidates}")
    merged = copy.deepcopy(current)
    for item in patch:
        existing = next((m for m in merged if m[key] == item[key]), None)
        if existing is None:
            merged.append(copy.deepcopy(item))
        else:
            _strategic_merge(existing, item, builtin=builtin)
    return merged


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"bad JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(document: Any, parts: list[str]) -> Any:
    for part in parts:
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def _apply_json6902(resource: Resource, operations: list[dict[str, Any]]) -> None:
    for operation in operations:
        op, parts = operation["op"], _pointer(operation["path"])
        try:
            parent, last = _walk(resource, parts[:-1]), parts[-1]
            if op == "test":
                if _walk(parent, [last]) != operation["value"]:
                    raise KustomizeError(f"JSON 6902 test failed at {operation['path']}")
            elif op == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            elif op in {"add", "replace"}:
                value = copy.deepcopy(operation["value"])
                if isinstance(parent, list):
                    index = len(parent) if last == "-" else int(last)
                    if op == "add":
                        parent.insert(index, value)
                    else:
                        parent[index] = value
                else:
                    if op == "replace" and last not in parent:
                        raise KustomizeError(f"replace of missing {operation['path']}")
                    parent[last] = value
            else:
                raise KustomizeError(f"unsupported JSON 6902 operation {op!r}")
        except (KeyError, IndexError, ValueError, TypeError) as error:
            raise KustomizeError(f"JSON 6902 {op} {operation['path']}: {error!r}") from error


# labels, replicas, images


def _apply_labels(resources: list[Resource], entry: dict[str, Any]) -> None:
    unknown = set(entry) - {"pairs", "includeSelectors", "includeTemplates"}
    if unknown:
        raise KustomizeError(f"unsupported labels fields {sorted(unknown)}")
    if entry.get("includeSelectors"):
        raise KustomizeError("labels.includeSelectors: true is not supported (rewrites selectors)")
    pairs = {str(k): str(v) for k, v in (entry.get("pairs") or {}).items()}
    for resource in resources:
        resource.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
        if entry.get("includeTemplates") and resource["kind"] in POD_TEMPLATE_KINDS:
            template = resource.setdefault("spec", {}).setdefault("template", {})
            template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
        if entry.get("includeTemplates") and resource["kind"] == "CronJob":
            job = resource.setdefault("spec", {}).setdefault("jobTemplate", {})
            job.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
            template = job.setdefault("spec", {}).setdefault("template", {})
            template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _apply_replicas(resources: list[Resource], entry: dict[str, Any]) -> None:
    matches = [
        r
        for r in resources
        if r["kind"] in REPLICATED_KINDS and r["metadata"]["name"] == entry["name"]
    ]
    if not matches:
        raise KustomizeError(f"replicas: no workload named {entry['name']!r}")
    for resource in matches:
        resource.setdefault("spec", {})["replicas"] = int(entry["count"])


def split_image(image: str) -> tuple[str, str]:
    """'repo/name:tag' → ('repo/name', ':tag'); 'name@sha256:…' → ('name', '@sha256:…')."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def _apply_image(resources: list[Resource], entry: dict[str, Any]) -> None:
    unknown = set(entry) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise KustomizeError(f"unsupported images fields {sorted(unknown)}")

    def rewrite(container: dict[str, Any]) -> None:
        image = container.get("image")
        if not isinstance(image, str):
            return
        name, suffix = split_image(image)
        if name != entry["name"]:
            return
        if entry.get("digest"):
            suffix = "@" + str(entry["digest"])
        elif entry.get("newTag") is not None:
            suffix = ":" + str(entry["newTag"])
        container["image"] = str(entry.get("newName") or name) + suffix

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"containers", "initContainers"} and isinstance(value, list):
                    for container in value:
                        if isinstance(container, dict):
                            rewrite(container)
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    for resource in resources:
        visit(resource)
