"""Task specifications: what to extract, described once, used by teacher prompts, student and scorer.

A new task (chemical–disease, gene–disease, ...) is a new YAML file, not new code::

    ade-distill label --task path/to/my_task.yaml ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer, model_validator

from ade_distill.errors import ConfigError

_HERE = Path(__file__).resolve().parent


class EntityType(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    label: str = Field(min_length=1, description="Label used in records, e.g. DRUG.")
    key: str = Field(min_length=1, description="JSON key for this argument in the LLM output, e.g. 'drug'.")
    definition: str = Field(min_length=1, description="Plain-language definition used in prompts.")


class RelationType(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    label: str = Field(min_length=1)
    head: str = Field(description="Entity label of the head argument.")
    tail: str = Field(description="Entity label of the tail argument.")
    definition: str = Field(min_length=1)


class Demonstration(BaseModel):
    """A worked example for k-shot prompts: a text and the relations expected, as argument strings."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    text: str
    relations: tuple[dict[str, str], ...] = ()


class TaskSpec(BaseModel):
    """Entity types, relation types, definitions and demonstrations of one extraction task."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str
    unit: Literal["sentence", "document"] = "sentence"
    entities: tuple[EntityType, ...] = Field(min_length=1)
    relations: tuple[RelationType, ...] = Field(min_length=1)
    instructions: str = Field(default="", description="Extra task-specific guidance appended to the prompt.")
    prompt_template: str = Field(default="re.v1", description="Versioned prompt template name (teacher/prompts).")
    demonstrations: tuple[Demonstration, ...] = ()
    student_architecture: Literal["drug_conditioned", "pairwise", "pair_classifier"] | None = Field(
        default=None,
        description="The student architecture that fits the task, used by `ade-distill train` when no "
        "--architecture is given (unset: drug_conditioned). Left out of dumps while unset, and out of stage keys "
        "(the architecture itself enters them through the training config).")

    @model_serializer(mode="wrap")
    def _drop_unset_hint(self, handler: Any) -> Any:
        out = handler(self)
        if isinstance(out, dict) and out.get("student_architecture", "") is None:
            out.pop("student_architecture")
        return out

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        labels = [e.label for e in self.entities]
        if len(set(labels)) != len(labels):
            raise ValueError(f"entity labels must be unique, got {labels}")
        keys = [e.key for e in self.entities]
        if len(set(keys)) != len(keys):
            raise ValueError(f"entity output keys must be unique, got {keys}")
        rel_labels = [r.label for r in self.relations]
        if len(set(rel_labels)) != len(rel_labels):
            raise ValueError(f"relation labels must be unique, got {rel_labels}")
        for rel in self.relations:
            for role, lab in (("head", rel.head), ("tail", rel.tail)):
                if lab not in labels:
                    raise ValueError(f"relation {rel.label!r} {role} {lab!r} is not an entity label {labels}")
        # a demonstration relation names its arguments by the output keys of one relation type (the primary
        # one for single-relation tasks)
        allowed = [{self.entity(r.head).key, self.entity(r.tail).key} for r in self.relations]
        for i, demo in enumerate(self.demonstrations):
            for item in demo.relations:
                if set(item) not in allowed:
                    raise ValueError(
                        f"demonstrations.{i}: relation keys {sorted(item)} != {sorted(allowed[0])}"
                        + (f" (or one of {[sorted(a) for a in allowed[1:]]})" if len(allowed) > 1 else "")
                    )
                for key, value in item.items():
                    if not value.strip():
                        raise ValueError(f"demonstrations.{i}: {key!r} is empty")
                    if value not in demo.text:
                        raise ValueError(f"demonstrations.{i}: {key} {value!r} does not occur in its text")
        return self

    # -- convenience -------------------------------------------------------------------------------------
    def entity(self, label: str) -> EntityType:
        for e in self.entities:
            if e.label == label:
                return e
        raise KeyError(label)

    @property
    def entity_labels(self) -> tuple[str, ...]:
        return tuple(e.label for e in self.entities)

    @property
    def relation_labels(self) -> tuple[str, ...]:
        return tuple(r.label for r in self.relations)

    @property
    def architecture(self) -> str:
        """The student architecture `ade-distill train` uses for this task without --architecture."""
        return self.student_architecture or "drug_conditioned"

    @property
    def primary(self) -> RelationType:
        """The relation the student extracts (head entity → tail entity)."""
        return self.relations[0]

    @property
    def head_label(self) -> str:
        return self.primary.head

    @property
    def tail_label(self) -> str:
        return self.primary.tail

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


BUILTIN_TASKS = ("ade", "cdr", "drug_dose")


def load_task(name_or_path: str | Path) -> TaskSpec:
    """Load a shipped task by name (``ade``, ``cdr``, ``drug_dose``: see ``gallery.yaml``) or a task YAML file by path.

    Raises:
        ConfigError: unknown name, unreadable file or invalid spec (the message names the field).
    """
    s = str(name_or_path)
    path = _HERE / f"{s}.yaml" if s in BUILTIN_TASKS else Path(s)
    if not path.is_file():
        raise ConfigError(f"unknown task {s!r}: expected one of {list(BUILTIN_TASKS)} or a path to a task YAML file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the task file: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: invalid task spec: expected a mapping with name, description, entities, relations; "
            f"found {type(raw).__name__}"
        )
    try:
        return TaskSpec.model_validate(raw)
    except ValidationError as err:
        msgs = "; ".join(
            (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
            for e in err.errors()
        )
        raise ConfigError(f"{path}: invalid task spec: {msgs}") from None
