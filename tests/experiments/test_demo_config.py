"""The README demo (configs/demo.yaml) is what the README says: configs/ade_multi_teacher.yaml with one epoch per
student, run on fold 0; the best configuration stays one documented command away."""

from __future__ import annotations

import re
from pathlib import Path

from ade_distill.experiments.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_demo_is_the_multi_teacher_config_with_one_epoch() -> None:
    demo = load_config(ROOT / "configs" / "demo.yaml").model_dump(mode="json")
    multi = load_config(ROOT / "configs" / "ade_multi_teacher.yaml").model_dump(mode="json")
    assert demo["student"]["epochs"] == 1 and multi["student"]["epochs"] == 2
    for cfg in (demo, multi):
        del cfg["name"], cfg["description"], cfg["student"]["epochs"]
    assert demo == multi
    assert demo["supervised"]["enabled"] and len(demo["teachers"]) == 3 and demo["adapt_encoder"] is None


def test_readme_commands() -> None:
    """The two front-door commands are where the README says (blocks found by their headings, so a new example
    block elsewhere cannot shift them), CI runs the test command verbatim, and the best configurations named
    beside them are configs that exist."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    assert blocks[0].strip() == "bash scripts/setup.sh && python -m ade_distill reproduce configs/demo.yaml --folds 1"
    tests = re.search(r"\*\*2\. Install and run the tests:\*\*\s*```bash\n(.*?)```", readme, flags=re.S)
    assert tests is not None, "README lost its '**2. Install and run the tests:**' block"
    assert tests.group(1).strip() == "bash scripts/setup.sh --dev && python -m pytest -q"
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith(tests.group(1).strip())
    first_part = readme[: tests.start()]
    for config in ("configs/ade_best.yaml", "configs/ade_mpnet_soft.yaml"):
        assert f"python -m ade_distill reproduce {config} --folds 1" in first_part
        assert (ROOT / config).is_file()
