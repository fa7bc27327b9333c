"""The pure-Python renderer: each feature on a tiny kustomization, and, where a real
kustomize >= 5 is installed, byte-for-byte agreement with it on deploy/k8s."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import K8S, OVERLAYS
from tests.deploy.kustomize_lite import KustomizeError, Resource, render, resource_key

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      initContainers:
        - name: init
          image: registry.example/web:1.0
      containers:
        - name: web
          image: registry.example/web:1.0
          env:
            - {name: A, value: "1"}
            - {name: B, value: "2"}
        - name: sidecar
          image: busybox
"""
CUSTOM = """
apiVersion: example.com/v1
kind: Widget
metadata:
  name: gizmo
spec:
  size: 1
  items: [a, b]
  nested: {keep: true, drop: true}
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def keyed(resources: list[Resource]) -> dict[tuple[str, str, str, str], Resource]:
    return {resource_key(r): r for r in resources}


def web(resources: list[Resource]) -> Resource:
    return next(r for r in resources if r["kind"] == "Deployment")


def widget(resources: list[Resource]) -> Resource:
    return next(r for r in resources if r["kind"] == "Widget")


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write(
        tmp_path / "base",
        {
            "kustomization.yaml": """
                resources: [deployment.yaml, widget.yaml]
                namespace: shop
                labels:
                  - pairs: {team: a}
                    includeTemplates: true
            """,
            "deployment.yaml": DEPLOYMENT,
            "widget.yaml": CUSTOM,
        },
    )


def test_resources_namespace_and_labels(base: Path) -> None:
    resources = render(base)
    assert [r["kind"] for r in resources] == ["Deployment", "Widget"]
    assert {r["metadata"]["namespace"] for r in resources} == {"shop"}
    deployment = web(resources)
    assert deployment["metadata"]["labels"] == {"app": "web", "team": "a"}
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "web", "team": "a"}
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "web"}  # never selectors
    assert widget(resources)["metadata"]["labels"] == {"team": "a"}


def test_overlay_strategic_merge_replicas_and_images(base: Path, tmp_path: Path) -> None:
    overlay = write(
        tmp_path / "overlay",
        {
            "kustomization.yaml": """
                resources: [../base]
                labels:
                  - pairs: {env: prod}
                replicas:
                  - {name: web, count: 4}
                images:
                  - {name: registry.example/web, newName: other.example/web, newTag: "2.0"}
                  - {name: busybox, digest: "sha256:abc"}
                patches:
                  - path: patch.yaml
                  - patch: |-
                      apiVersion: example.com/v1
                      kind: Widget
                      metadata: {name: gizmo}
                      spec:
                        items: [c]
                        nested: {drop: null}
            """,
            "patch.yaml": """
                apiVersion: apps/v1
                kind: Deployment
                metadata: {name: web}
                spec:
                  template:
                    spec:
                      containers:
                        - name: web
                          env:
                            - {name: B, value: "two"}
                            - {name: C, value: "3"}
            """,
        },
    )
    resources = render(overlay)
    deployment = web(resources)
    assert deployment["spec"]["replicas"] == 4
    assert deployment["metadata"]["labels"]["env"] == "prod"
    assert "env" not in deployment["spec"]["template"]["metadata"]["labels"]
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web", "sidecar"]  # merged by name, kept
    assert containers[0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "two"},
        {"name": "C", "value": "3"},
    ]
    assert containers[0]["image"] == "other.example/web:2.0"
    assert containers[1]["image"] == "busybox@sha256:abc"
    init = deployment["spec"]["template"]["spec"]["initContainers"][0]
    assert init["image"] == "other.example/web:2.0"
    # A custom resource: lists are replaced, null deletes.
    assert widget(resources)["spec"] == {"size": 1, "items": ["c"], "nested": {"keep": True}}


def test_json6902_patch(base: Path, tmp_path: Path) -> None:
    overlay = write(
        tmp_path / "overlay",
        {
            "kustomization.yaml": """
                resources: [../base]
                patches:
                  - target: {group: example.com, kind: Widget, name: giz.*}
                    patch: |-
                      - {op: replace, path: /spec/size, value: 3}
                      - {op: add, path: /spec/items/-, value: z}
                      - {op: remove, path: /spec/nested/drop}
                      - {op: add, path: /metadata/annotations, value: {}}
                      - {op: add, path: /metadata/annotations/example.com~1note, value: x}
            """,
        },
    )
    rendered = widget(render(overlay))
    assert rendered["spec"] == {"size": 3, "items": ["a", "b", "z"], "nested": {"keep": True}}
    assert rendered["metadata"]["annotations"] == {"example.com/note": "x"}


@pytest.mark.parametrize(
    ("kustomization", "error"),
    [
        ("resources: [../base]\nnamePrefix: x-\n", "unsupported kustomization fields"),
        ("resources: [../base]\nlabels: [{pairs: {a: b}, includeSelectors: true}]\n", "selectors"),
        ("resources: [../base, ../base]\n", "duplicate resource"),
        ("resources: [missing.yaml]\n", "not found"),
        ("resources: [../base]\nreplicas: [{name: nope, count: 2}]\n", "no workload"),
        (
            "resources: [../base]\npatches:\n  - patch: '[{op: replace, path: /spec/size, "
            "value: 2}]'\n",
            "needs a target",
        ),
        (
            "resources: [../base]\npatches:\n  - target: {kind: Widget}\n"
            "    patch: '[{op: replace, path: /spec/missing, value: 2}]'\n",
            "replace of missing",
        ),
        (
            "resources: [../base]\npatches:\n  - patch: |\n      apiVersion: v1\n"
            "      kind: ConfigMap\n      metadata: {name: nope}\n",
            "matches no resource",
        ),
    ],
)
def test_refuses_what_it_does_not_implement(
    base: Path, tmp_path: Path, kustomization: str, error: str
) -> None:
    overlay = write(tmp_path / "overlay", {"kustomization.yaml": kustomization})
    with pytest.raises(KustomizeError, match=error):
        render(overlay)


def real_kustomize() -> list[str] | None:
    """A kustomize >= 5 from PATH (`kustomize`, or the one inside `kubectl`), if any."""
    for command, version in (
        (["kustomize", "build"], ["kustomize", "version"]),
        (["kubectl", "kustomize"], ["kubectl", "version", "--client"]),
    ):
        if not shutil.which(command[0]):
            continue
        try:
            out = subprocess.run(version, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        found = re.search(r"(?:Kustomize Version: |^)v?(\d+)\.\d+", out, re.MULTILINE)
        if found and int(found.group(1)) >= 5:
            return command
    return None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_agrees_with_real_kustomize(overlay: str) -> None:
    command = real_kustomize()
    if command is None:
        pytest.skip("no kustomize >= 5 installed (optional: the renderer is tested above)")
    directory = K8S / "overlays" / overlay
    out = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert keyed(render(directory)) == keyed([d for d in yaml.safe_load_all(out) if d])
