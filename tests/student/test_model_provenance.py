"""A student folder records the code that trained it (student.json → provenance.software, and the model card);
re-saving a loaded model keeps the original record."""

from __future__ import annotations

import json
from pathlib import Path

from ade_distill.provenance import describe, software_provenance


def test_model_folder_and_card_record_the_code(trained_dir: Path, tmp_path: Path) -> None:
    from ade_distill.student.model import StudentExtractor

    sw = json.loads((trained_dir / "student.json").read_text())["provenance"]["software"]
    assert sw == software_provenance()
    assert set(sw["libraries"]) >= {"torch", "transformers", "tokenizers", "datasets", "openai"}
    assert f"Made by: {describe(sw)}." in (trained_dir / "README.md").read_text()

    model = StudentExtractor.from_pretrained(trained_dir)
    old = {**sw, "git_commit": "0" * 40, "source_sha256": "0" * 16}
    model.config = model.config.model_copy(update={"provenance": {**model.config.provenance, "software": old}})
    model.save_pretrained(tmp_path / "copy")
    assert json.loads((tmp_path / "copy" / "student.json").read_text())["provenance"]["software"] == old
