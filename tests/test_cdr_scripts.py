"""The BC5CDR split script trains with the student options of configs/cdr_gpt4_replay.yaml: the standard-split row and
the dev-split probes stay comparable with the cross-validated comparison when that config changes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _script_options(path: Path) -> dict[str, str | bool]:
    body = re.search(r"^opts=\((.*?)\)", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    assert body, f"{path}: no opts=(...) array"
    words = [w for w in shlex.split(body.group(1).replace("\\\n", " ")) if w != '"$@"' and w != "$@"]
    out: dict[str, str | bool] = {}
    i = 0
    while i < len(words):
        name = words[i].removeprefix("--").replace("-", "_")
        if i + 1 < len(words) and not words[i + 1].startswith("--"):
            out[name], i = words[i + 1], i + 2
        else:
            out[name], i = True, i + 1
    return out


def _config_options() -> dict[str, str | bool]:
    cfg = yaml.safe_load((ROOT / "configs" / "cdr_gpt4_replay.yaml").read_text(encoding="utf-8"))
    student = {k: v for k, v in cfg["student"].items() if k != "architecture"}
    student.setdefault("seed", 13)
    student["dev_fraction"] = cfg["dev_fraction"]
    return {k: (v if isinstance(v, bool) else str(v)) for k, v in student.items() if v is not False}


def _same(a: str | bool, b: str | bool) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def test_script_options_equal_the_cdr_config() -> None:
    script = "cdr_split.sh"
    got, want = _script_options(ROOT / "scripts" / script), _config_options()
    assert set(got) == set(want), f"{script}: options {sorted(got)} vs configs/cdr_gpt4_replay.yaml {sorted(want)}"
    differ = {k: (got[k], want[k]) for k in want if not _same(got[k], want[k])}
    assert not differ, f"{script} differs from configs/cdr_gpt4_replay.yaml: {differ}"
