"""What code made an output: this package's version, its git commit (with a dirty flag) and a hash of its source,
and the versions of the libraries that shape results (torch, transformers, tokenizers, datasets, openai).

Recorded in every ``results.json`` (``reproduce``, ``score``, ``ablation``), every student folder
(``student.json`` → ``provenance.software``, shown in the model card) and every stage marker (``stage.json``),
where ``reproduce`` compares it on reuse: a cached stage made by other code is reused as it is (stage keys ignore
code by design) but named in a warning (:func:`differences`).
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["LIBRARIES", "software_provenance", "differences", "describe"]

LIBRARIES = ("torch", "transformers", "tokenizers", "datasets", "openai")
_PACKAGE_DIR = Path(__file__).resolve().parent
_SOURCE_SUFFIXES = (".py", ".yaml", ".jinja")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def source_hash(package_dir: Path = _PACKAGE_DIR) -> str:
    """SHA-256 (16 hex digits) of the package's source files (``.py``, ``.yaml``, ``.jinja``: paths and
    contents), the same for the same code whether it comes from a git checkout or a wheel."""
    h = hashlib.sha256()
    for p in sorted(q for q in package_dir.rglob("*") if q.suffix in _SOURCE_SUFFIXES and q.is_file()):
        h.update(p.relative_to(package_dir).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def git_state(package_dir: Path = _PACKAGE_DIR) -> dict[str, Any]:
    """``{"git_commit", "git_dirty"}`` of the checkout the package runs from (None, None when it is not in a
    git checkout, e.g. installed from a wheel). Dirty: tracked files changed, staged or untracked files not
    ignored, anywhere in the checkout."""
    root = package_dir.parent
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top.strip()).resolve() != root.resolve():
        return {"git_commit": None, "git_dirty": None}
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain")
    return {"git_commit": commit.strip() if commit else None,
            "git_dirty": None if status is None else bool(status.strip())}


@functools.lru_cache(maxsize=1)
def software_provenance() -> dict[str, Any]:
    """This process's code and libraries (computed once per process)::

        {"ade_distill": "0.1.0", "git_commit": "5515c4f…", "git_dirty": true, "source_sha256": "…",
         "python": "3.11.7", "libraries": {"torch": "2.13.0+cpu", "transformers": "5.24.0", ...}}
    """
    import platform

    return {"ade_distill": _version("ade-distill"), **git_state(), "source_sha256": source_hash(),
            "python": platform.python_version(), "libraries": {lib: _version(lib) for lib in LIBRARIES}}


def differences(recorded: dict[str, Any] | None, current: dict[str, Any] | None = None) -> list[str]:
    """What differs between the code that made an output (``recorded``) and ``current`` (default: this process):
    the package source (hash), its version, or a library version. Empty when the same, or when nothing was
    recorded (outputs made before provenance was kept). Commits are not compared: the same source under another
    commit is the same code."""
    if not recorded:
        return []
    current = current or software_provenance()
    out = []
    if recorded.get("source_sha256") != current.get("source_sha256"):
        out.append(f"ade-distill source {recorded.get('source_sha256')} (commit {_short(recorded)}) → "
                   f"{current.get('source_sha256')} (commit {_short(current)})")
    if recorded.get("ade_distill") != current.get("ade_distill"):
        out.append(f"ade-distill {recorded.get('ade_distill')} → {current.get('ade_distill')}")
    rl, cl = recorded.get("libraries") or {}, current.get("libraries") or {}
    out += [f"{lib} {rl.get(lib)} → {cl.get(lib)}" for lib in LIBRARIES if rl.get(lib) != cl.get(lib)]
    return out


def _short(p: dict[str, Any]) -> str:
    commit = p.get("git_commit")
    return "unknown" if not commit else commit[:10] + ("+dirty" if p.get("git_dirty") else "")


def describe(p: dict[str, Any]) -> str:
    """One line for reports and model cards."""
    libs = ", ".join(f"{k} {v}" for k, v in (p.get("libraries") or {}).items() if v)
    return (f"ade-distill {p.get('ade_distill')} (commit {_short(p)}, source {p.get('source_sha256')}), "
            f"Python {p.get('python')}; {libs}")
