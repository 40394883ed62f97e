"""The task gallery: an index of the shipped tasks (``gallery.yaml``) — which gold corpus each is scored on, with
which scorer modes, and the reproduce config that runs it. The tasks themselves are their YAML files."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ade_distill.errors import ConfigError
from ade_distill.tasks.spec import TaskSpec, load_task

GALLERY_FILE = Path(__file__).resolve().parent / "gallery.yaml"


class GalleryEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    task: str = Field(description="A shipped task name (its YAML file is ade_distill/tasks/<task>.yaml).")
    corpus: str = Field(description="The gold corpus name `ade-distill data export --corpus` reads.")
    scoring: tuple[str, ...] = Field(min_length=1, description="Scorer modes, headline first.")
    student: Literal["drug_conditioned", "pairwise", "pair_classifier"] = Field(
        description="The student architecture the config trains (`--architecture` of `ade-distill train`).")
    config: str | None = Field(default=None, description="Reproduce config, relative to the repository.")
    source: str

    def spec(self) -> TaskSpec:
        return load_task(self.task)


def load_gallery(path: str | Path = GALLERY_FILE) -> list[GalleryEntry]:
    """The gallery's entries, validated (a bad entry raises :class:`ConfigError` naming it)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return TypeAdapter(list[GalleryEntry]).validate_python(raw)
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the task gallery: {err}") from None
    except ValidationError as err:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<top>'}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"{path}: invalid task gallery: {msgs}") from None


__all__ = ["GALLERY_FILE", "GalleryEntry", "load_gallery"]
