"""Write requirements/reference.txt: the exact versions of ade-distill's dependencies (with the offline, notebook,
tokens and dev extras, and everything they pull in) in the current environment — the reference environment
the test suite and the committed reports ran in.

    python scripts/freeze_reference.py            # rewrite requirements/reference.txt from this environment
    pip install -c requirements/reference.txt -e '.[dev]'   # reproduce that environment

tests/test_dependencies.py checks that pyproject.toml's ranges admit every pinned version.
"""

from __future__ import annotations

import platform
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("offline", "notebook", "tokens", "dev")


def declared(extras: tuple[str, ...] = EXTRAS) -> list[Requirement]:
    """The requirements of pyproject.toml that apply here: the base dependencies and those of ``extras``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return [r for r in map(Requirement, reqs) if r.marker is None or r.marker.evaluate({"extra": ""})]


def closure(roots: list[Requirement]) -> dict[str, str]:
    """Installed name → version of ``roots`` and of everything they require here (markers evaluated)."""
    env = {"extra": ""}
    out: dict[str, str] = {}
    todo = [r for r in roots if r.marker is None or r.marker.evaluate(env)]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in out:
            continue
        dist = metadata.distribution(req.name)  # raises PackageNotFoundError: install the extras first
        out[name] = dist.version
        for sub in dist.requires or []:
            r = Requirement(sub)
            wanted = [""] + [canonicalize_name(e) for e in req.extras]
            if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in wanted):
                todo.append(r)
    return out


def main() -> None:
    pins = closure(declared())
    lines = [
        "# The reference environment: exact versions of ade-distill's dependencies (extras offline, notebook,",
        "# tokens, dev, and what they pull in) that the tests and the committed reports ran with.",
        f"# Python {platform.python_version()} on {platform.system()} {platform.machine()}. Written by",
        "# `python scripts/freeze_reference.py`; use as `pip install -c requirements/reference.txt -e '.[dev]'`.",
        "# Local version labels are dropped (torch==2.13.0 matches the CPU build 2.13.0+cpu and the CUDA build).",
    ]
    lines += [f"{name}=={re.sub(r'[+].*$', '', version)}" for name, version in sorted(pins.items())]
    out = ROOT / "requirements" / "reference.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(pins)} packages)", file=sys.stderr)


if __name__ == "__main__":
    main()
