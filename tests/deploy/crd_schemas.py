"""The operators' custom resources, validated against their CRDs' OpenAPI v3 schemas.

The CRDs are vendored unedited from the operators' releases (crds/README.md says which). A
CRD schema is OpenAPI v3.0 with Kubernetes extensions, close to JSON Schema draft 4 (a
boolean `exclusiveMinimum`, no `$schema`), so jsonschema's Draft4Validator runs it after
`to_json_schema` adds what the API server does on top:

- unknown fields: an object schema that lists `properties` (or none) without
  `additionalProperties` or `x-kubernetes-preserve-unknown-fields: true` is closed, as the
  API server prunes or, with strict field validation (kubectl's default), rejects the rest;
- `x-kubernetes-list-type` `set` and `map` forbid duplicates (by the map keys);
- the root `metadata` is an ObjectMeta, checked with kubernetes-validate's schema.

Not checked: `format` and the CEL rules of `x-kubernetes-validations` (`cel_rules` lists
them so a test can pin them). A keyword this module does not know makes it refuse the CRD
rather than validate it half.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from jsonschema.protocols import Validator

Resource = dict[str, Any]
Schema = dict[str, Any]

CRDS = Path(__file__).resolve().parent / "crds"


@dataclass(frozen=True)
class Vendored:
    file: str
    sha256: str  # of the upstream file: an edit here is no longer the operator's schema


VENDORED: dict[tuple[str, str], Vendored] = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): Vendored(
        "rabbitmq.com_rabbitmqclusters.yaml",
        "3d12de2e4281eb91c49d9860b733b6aa741fe0f608c6a2c4160226fe4993d0de",
    ),
    ("postgresql.cnpg.io/v1", "Cluster"): Vendored(
        "postgresql.cnpg.io_clusters.yaml",
        "ae47f4a00f6e998faef57e480f9a3960cd48ea16a79270861fc7442601507472",
    ),
    ("keda.sh/v1alpha1", "ScaledObject"): Vendored(
        "keda.sh_scaledobjects.yaml",
        "af35555862a83933b074af14ad439c4b4ceabaf4daa3e9338e9b23e36d308d80",
    ),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): Vendored(
        "keda.sh_triggerauthentications.yaml",
        "275307b4cb19ca8f0f506a879282aa4c67587ac16ec757f494d6585c5c185d65",
    ),
}

# Keywords with the same meaning in JSON Schema draft 4, or only documentation.
PLAIN_KEYWORDS = {
    "description",
    "type",
    "required",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "default",  # applied by the API server, never a constraint
    "format",  # not checked (module docstring)
    "x-kubernetes-int-or-string",  # the schema spells it out with anyOf integer/string
    "x-kubernetes-map-type",  # how server-side apply merges, not what is valid
    "x-kubernetes-validations",  # CEL: not checked (module docstring)
}
STRUCTURAL_KEYWORDS = {
    "properties",
    "additionalProperties",
    "items",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}
BRANCH_KEYWORDS = ("anyOf", "allOf", "oneOf", "not")


class CrdError(Exception):
    """A vendored CRD that cannot validate this resource, or that this module cannot read."""


# loading


def file_sha256(vendored: Vendored) -> str:
    return hashlib.sha256((CRDS / vendored.file).read_bytes()).hexdigest()


@cache
def load_crd(file: str) -> dict[str, Any]:
    return yaml.safe_load((CRDS / file).read_text(encoding="utf-8"))


def served_version(crd: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    """The CRD's `spec.versions[]` entry that serves `api_version` `kind`."""
    group, _, version = api_version.rpartition("/")
    spec = crd["spec"]
    if (spec["group"], spec["names"]["kind"]) != (group, kind):
        raise CrdError(f"{crd['metadata']['name']} defines {spec['names']['kind']}.{group}")
    for entry in spec["versions"]:
        if entry["name"] == version:
            if not entry.get("served"):
                raise CrdError(f"{api_version} {kind} is no longer served")
            return entry
    names = [v["name"] for v in spec["versions"]]
    raise CrdError(f"{kind} has no version {version} (the CRD has {names})")


# translation


def to_json_schema(schema: Schema) -> Schema:
    """A CRD's openAPIV3Schema as a draft 4 JSON Schema, closed where the API server is."""
    root = _closed(schema, "")
    if isinstance(root.get("properties", {}).get("metadata"), dict):
        root["properties"]["metadata"] = {"type": "object"}  # an ObjectMeta, checked apart
    return root


def _closed(schema: Schema, where: str) -> Schema:
    unknown = set(schema) - PLAIN_KEYWORDS - STRUCTURAL_KEYWORDS - set(BRANCH_KEYWORDS)
    if unknown:
        raise CrdError(f"{where or '/'}: keywords this validator does not implement {unknown}")
    result = copy.deepcopy({k: v for k, v in schema.items() if k in PLAIN_KEYWORDS})
    for name, child in schema.get("properties", {}).items():
        result.setdefault("properties", {})[name] = _closed(child, f"{where}/{name}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        result["additionalProperties"] = _closed(extra, f"{where}/*")
    elif extra is not None:
        result["additionalProperties"] = extra
    elif schema.get("x-kubernetes-preserve-unknown-fields") is not True and (
        schema.get("type") == "object" or "properties" in schema
    ):
        result["additionalProperties"] = False
    if "items" in schema:
        result["items"] = _closed(schema["items"], f"{where}[]")
    for key in ("x-kubernetes-list-type", "x-kubernetes-list-map-keys"):
        if key in schema:
            result[key] = schema[key]
    # Branches only restrict values: structural schemas may not add fields in them, so they
    # are not closed (a closed branch would refuse the fields its parent allows).
    for key in BRANCH_KEYWORDS:
        if key in schema:
            result[key] = copy.deepcopy(schema[key])
    return result


def _list_type(
    validator: Validator, list_type: str, instance: Any, schema: Schema
) -> Iterator[jsonschema.ValidationError]:
    if not validator.is_type(instance, "array") or list_type == "atomic":
        return
    if list_type == "set":
        keys = [json.dumps(item, sort_keys=True) for item in instance]
    elif list_type == "map":
        names = schema.get("x-kubernetes-list-map-keys", [])
        keys = [json.dumps([item.get(k) for k in names]) for item in instance]
    else:
        yield jsonschema.ValidationError(f"unknown x-kubernetes-list-type {list_type!r}")
        return
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        yield jsonschema.ValidationError(f"duplicate {list_type} items {duplicates}")


CrdValidator = jsonschema.validators.extend(
    jsonschema.Draft4Validator, validators={"x-kubernetes-list-type": _list_type}
)


@cache
def validator(api_version: str, kind: str) -> Validator:
    vendored = VENDORED.get((api_version, kind))
    if vendored is None:
        raise CrdError(f"no vendored CRD for {api_version} {kind} (tests/deploy/crds)")
    entry = served_version(load_crd(vendored.file), api_version, kind)
    schema = to_json_schema(entry["schema"]["openAPIV3Schema"])
    CrdValidator.check_schema(schema)
    return CrdValidator(schema)


def cel_rules(schema: Schema, where: str = "") -> list[tuple[str, str]]:
    """(path, rule) of every `x-kubernetes-validations` rule: the part not checked here."""
    found = [(where or "/", rule["rule"]) for rule in schema.get("x-kubernetes-validations", [])]
    for name, child in schema.get("properties", {}).items():
        found += cel_rules(child, f"{where}/{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        found += cel_rules(schema["additionalProperties"], f"{where}/*")
    if "items" in schema:
        found += cel_rules(schema["items"], f"{where}[]")
    return found


# validation


def crd_problems(resource: Resource, k8s_version: str | None = None) -> list[str]:
    """What the API server would refuse in this custom resource, per its vendored CRD."""
    where = f"{resource.get('kind')} {resource.get('metadata', {}).get('name')}"
    try:
        check = validator(resource.get("apiVersion", ""), resource.get("kind", ""))
    except CrdError as error:
        return [f"{where}: {error}"]
    problems = [
        f"{where}: /{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in sorted(
            check.iter_errors(resource), key=lambda e: [str(p) for p in e.absolute_path]
        )
    ]
    return problems + _metadata_problems(where, resource, k8s_version)


def _metadata_problems(where: str, resource: Resource, k8s_version: str | None) -> list[str]:
    # The API server checks a custom resource's metadata as an ObjectMeta, like any object's;
    # a ConfigMap carrying it is the shortest way to ask kubernetes-validate's strict schema.
    carrier = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": resource.get("metadata")}
    version = k8s_version or kubernetes_validate.latest_version()
    try:
        kubernetes_validate.validate(carrier, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = "/".join(str(p) for p in error.absolute_path)
        return [f"{where}: /{path}: {error.message} (as an ObjectMeta)"]
    return []
