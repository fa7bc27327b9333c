"""Manifest tests need no servers: render deploy/k8s once per overlay with `kubectl kustomize`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.kustomize import RenderError, Resource, render

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")


@pytest.fixture(scope="session", autouse=True)
def _delete_broker_objects_after_run() -> Iterator[None]:
    """Overrides the suite-wide broker clean-up: these tests never touch a broker, and must
    pass on a machine that has none (`pytest tests/deploy`)."""
    yield


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Resource]]:
    try:
        return {overlay: render(K8S / "overlays" / overlay) for overlay in OVERLAYS}
    except RenderError as error:
        # Fail, never skip: without the rendered manifests every check below checks nothing.
        pytest.fail(f"cannot render deploy/k8s: {error}", pytrace=False)
