"""Task specifications (ADE, CDR, or your own YAML)."""

from ade_distill.tasks.spec import BUILTIN_TASKS, Demonstration, EntityType, RelationType, TaskSpec, load_task

__all__ = ["BUILTIN_TASKS", "Demonstration", "EntityType", "RelationType", "TaskSpec", "load_task"]
