"""The operators' custom resources in deploy/k8s against their vendored CRDs' schemas
(tests/deploy/crds, applied by crd_schemas.py), and proof that this validation can fail."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from tests.deploy.conftest import OVERLAYS
from tests.deploy.crd_schemas import (
    VENDORED,
    CrdError,
    CrdValidator,
    cel_rules,
    crd_problems,
    file_sha256,
    load_crd,
    served_version,
    to_json_schema,
)
from tests.deploy.kustomize import Resource

Docs = list[Resource]


def custom_resources(docs: Docs) -> Docs:
    return [d for d in docs if (d["apiVersion"], d["kind"]) in VENDORED]


def the(docs: Docs, kind: str) -> Resource:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


@pytest.mark.parametrize("key", sorted(VENDORED))
def test_vendored_crds_are_the_operators_files(key: tuple[str, str]) -> None:
    # crds/README.md names each file's release; a hand edit would no longer be that schema.
    assert file_sha256(VENDORED[key]) == VENDORED[key].sha256


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_match_their_crds(rendered: dict[str, Docs], overlay: str) -> None:
    resources = custom_resources(rendered[overlay])
    assert len(resources) == len(VENDORED)
    for resource in resources:
        assert crd_problems(resource) == []


# Every kind of schema rule must be able to fail: break the real prod resources one at a time.
MUTATIONS: dict[str, tuple[str, Callable[[Resource], Any], str]] = {
    "unknown spec field": (
        "RabbitmqCluster",
        lambda r: r["spec"].update(replica=3),
        "/spec: Additional properties are not allowed ('replica' was unexpected)",
    ),
    "unknown nested field": (
        "Cluster",
        lambda r: r["spec"]["bootstrap"]["initdb"].update(databse="hookpost"),
        "/spec/bootstrap/initdb: Additional properties are not allowed ('databse'",
    ),
    "unknown top-level field": (
        "TriggerAuthentication",
        lambda r: r.update(data={"host": "x"}),
        "/: Additional properties are not allowed ('data'",
    ),
    "integer as a string": (
        "Cluster",
        lambda r: r["spec"].update(instances="3"),
        "/spec/instances: '3' is not of type 'integer'",
    ),
    "KEDA trigger metadata as a number": (
        "ScaledObject",
        lambda r: r["spec"]["triggers"][0]["metadata"].update(value=600),
        "/spec/triggers/0/metadata/value: 600 is not of type 'string'",
    ),
    "value outside the enum": (
        "Cluster",
        lambda r: r["spec"].update(primaryUpdateStrategy="sometimes"),
        "/spec/primaryUpdateStrategy: 'sometimes' is not one of",
    ),
    "below the minimum": (
        "ScaledObject",
        lambda r: r["spec"].update(pollingInterval=0),
        "/spec/pollingInterval: 0 is less than the minimum of 1",
    ),
    "required field missing": (
        "TriggerAuthentication",
        lambda r: r["spec"]["secretTargetRef"][0].pop("key"),
        "/spec/secretTargetRef/0: 'key' is a required property",
    ),
    "pattern": (
        "RabbitmqCluster",
        lambda r: r["spec"]["rabbitmq"]["additionalPlugins"].insert(0, "rabbitmq-shovel"),
        "/spec/rabbitmq/additionalPlugins/0: 'rabbitmq-shovel' does not match",
    ),
    "duplicate key in a map list": (
        "Cluster",
        lambda r: r["spec"]["resources"].update(claims=[{"name": "gpu"}, {"name": "gpu"}]),
        "/spec/resources/claims: duplicate map items",
    ),
    "unknown metadata field": (
        "RabbitmqCluster",
        lambda r: r["metadata"].update(label={"a": "b"}),
        "/metadata: Additional properties are not allowed ('label'",
    ),
    "version the CRD does not have": (
        "ScaledObject",
        lambda r: r.update(apiVersion="keda.sh/v1beta1"),
        "no vendored CRD for keda.sh/v1beta1 ScaledObject",
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_crd_validation_can_fail(rendered: dict[str, Docs], mutation: str) -> None:
    kind, mutate, expected = MUTATIONS[mutation]
    resource = copy.deepcopy(the(rendered["prod"], kind))
    assert crd_problems(resource) == []
    mutate(resource)
    problems = crd_problems(resource)
    assert any(expected in p for p in problems), problems


def test_open_maps_stay_open(rendered: dict[str, Docs]) -> None:
    """Closing objects must not close what the CRD leaves open: maps of any key."""
    scaled = copy.deepcopy(the(rendered["prod"], "ScaledObject"))
    scaled["spec"]["triggers"][0]["metadata"]["excludeUnacknowledged"] = "false"
    rabbit = copy.deepcopy(the(rendered["prod"], "RabbitmqCluster"))
    rabbit["spec"]["resources"]["limits"]["hugepages-2Mi"] = "64Mi"
    rabbit["metadata"].setdefault("annotations", {})["example.com/note"] = "x"
    assert crd_problems(scaled) == []
    assert crd_problems(rabbit) == []


def _accepts(schema: dict[str, Any], instance: Any) -> bool:
    return CrdValidator(to_json_schema(schema)).is_valid(instance)


def test_closed_unless_the_schema_preserves_unknown_fields() -> None:
    listed = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert _accepts(listed, {"a": "x"})
    assert not _accepts(listed, {"a": "x", "b": "y"})
    assert _accepts({**listed, "x-kubernetes-preserve-unknown-fields": True}, {"b": "y"})
    assert _accepts({"type": "object", "additionalProperties": {"type": "string"}}, {"b": "y"})
    # anyOf branches restrict values; they are not closed against their parent's fields.
    branches = {**listed, "anyOf": [{"required": ["a"]}, {"properties": {"a": {}}}]}
    assert _accepts(branches, {"a": "x"})


def test_list_types() -> None:
    items = {"type": "object", "properties": {"name": {"type": "string"}}}
    keyed = {
        "type": "array",
        "items": items,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
    }
    assert _accepts(keyed, [{"name": "a"}, {"name": "b"}])
    assert not _accepts(keyed, [{"name": "a"}, {"name": "a"}])
    a_set = {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}
    assert not _accepts(a_set, ["a", "a"])
    assert _accepts({**a_set, "x-kubernetes-list-type": "atomic"}, ["a", "a"])


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "nullable": True},
        {"type": "object", "x-kubernetes-embedded-resource": True},
        {"type": "object", "properties": {"a": {"type": "string", "$ref": "#/x"}}},
    ],
)
def test_refuses_keywords_it_does_not_implement(schema: dict[str, Any]) -> None:
    with pytest.raises(CrdError, match="does not implement"):
        to_json_schema(schema)


def test_translated_schemas_are_valid_draft4() -> None:
    for (api_version, kind), vendored in VENDORED.items():
        entry = served_version(load_crd(vendored.file), api_version, kind)
        schema = to_json_schema(entry["schema"]["openAPIV3Schema"])
        CrdValidator.check_schema(schema)
        assert schema["additionalProperties"] is False  # the root is closed too
        with pytest.raises(jsonschema.SchemaError):
            CrdValidator.check_schema({**schema, "type": "objekt"})


# The CEL rules (x-kubernetes-validations) are not evaluated here. Each one these CRDs hold is
# listed with why hookpost's resources satisfy it; a new operator release that adds a rule
# fails this test until someone reads the rule.
CEL_RULES: dict[tuple[str, str, str], str] = {
    (
        "ScaledObject",
        "/spec",
        "!has(self.minReplicaCount) || self.minReplicaCount <= "
        "(has(self.maxReplicaCount) ? self.maxReplicaCount : 100)",
    ): "check_sender_scaling (test_manifests.py) requires 1 <= min < max",
    (
        "Cluster",
        "/spec",
        "!(has(self.imageCatalogRef) && has(self.imageName))",
    ): "hookpost sets imageName only",
    (
        "Cluster",
        "/spec/bootstrap/initdb",
        "!has(self.builtinLocale) || self.localeProvider == 'builtin'",
    ): "no locale settings",
    (
        "Cluster",
        "/spec/bootstrap/initdb",
        "!has(self.icuLocale) || self.localeProvider == 'icu'",
    ): "no locale settings",
    (
        "Cluster",
        "/spec/bootstrap/initdb",
        "!has(self.icuRules) || self.localeProvider == 'icu'",
    ): "no locale settings",
    (
        "Cluster",
        "/spec/imageCatalogRef",
        "self.kind == 'ImageCatalog' || self.kind == 'ClusterImageCatalog'",
    ): "no imageCatalogRef",
    ("Cluster", "/spec/imageCatalogRef", "self.apiGroup == 'postgresql.cnpg.io'"): (
        "no imageCatalogRef"
    ),
    (
        "Cluster",
        "/spec/postgresql/synchronous",
        "self.dataDurability!='preferred' || ((!has(self.standbyNamesPre) || "
        "self.standbyNamesPre.size()==0) && (!has(self.standbyNamesPost) || "
        "self.standbyNamesPost.size()==0))",
    ): "no postgresql.synchronous (prod uses minSyncReplicas/maxSyncReplicas)",
    ("Cluster", "/spec/postgresql/synchronous/number", "self > 0"): "no postgresql.synchronous",
    ("Cluster", "/spec/serviceAccountName", "self == oldSelf"): (
        "a transition rule: not checked on create; no serviceAccountName"
    ),
    (
        "RabbitmqCluster",
        "/spec/rabbitmq/envConfig",
        "!self.contains('$(') && !self.contains('`')",
    ): "no envConfig",
}


def test_cel_rules_are_the_ones_reviewed() -> None:
    found = set()
    for (api_version, kind), vendored in VENDORED.items():
        entry = served_version(load_crd(vendored.file), api_version, kind)
        found |= {
            (kind, path, rule) for path, rule in cel_rules(entry["schema"]["openAPIV3Schema"])
        }
    assert found == set(CEL_RULES)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cel_rules_reviewed_as_unused_stay_unused(rendered: dict[str, Docs], overlay: str) -> None:
    """Where a rule's reason is that hookpost does not set the field, it still does not."""
    unused = {
        ("Cluster", "/spec/imageCatalogRef"),
        ("Cluster", "/spec/bootstrap/initdb/builtinLocale"),
        ("Cluster", "/spec/bootstrap/initdb/icuLocale"),
        ("Cluster", "/spec/bootstrap/initdb/icuRules"),
        ("Cluster", "/spec/postgresql/synchronous"),
        ("Cluster", "/spec/serviceAccountName"),
        ("RabbitmqCluster", "/spec/rabbitmq/envConfig"),
    }
    for kind, path in sorted(unused):
        node: Any = the(rendered[overlay], kind)
        for part in path.strip("/").split("/")[:-1]:
            node = node.get(part, {})
        assert path.rsplit("/", 1)[1] not in node, f"{kind} sets {path}: read its CEL rules"
