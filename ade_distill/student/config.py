"""`StudentConfig`: what is needed to rebuild and run a trained student, saved as ``student.json`` in the model
folder. A module of its own (no torch, no transformers), so that the model card, prediction and the model can all
read it without importing each other; ``ade_distill.student.model`` re-exports it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FORMAT_VERSION = 1

Architecture = Literal["drug_conditioned", "pairwise", "pair_classifier"]


class StudentConfig(BaseModel):
    """What is needed to rebuild and run a student (saved as ``student.json``)."""

    model_config = ConfigDict(extra="forbid")
    format_version: int = FORMAT_VERSION
    architecture: Architecture = "drug_conditioned"
    encoder: str = Field(description="Encoder the student was initialised from (as given, before resolving).")
    max_length: int = Field(default=128, ge=8, le=4096)
    window_long_texts: bool = Field(
        default=False, description="Predict long texts in windows of whole sentences (else sentence by sentence).")
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    tail_head: Literal["linear", "interaction"] = Field(
        default="linear", description="Stage-2 layer: the paper's linear layer over [h; v], or an interaction MLP.")
    head_threshold: float = Field(default=0.5, gt=0.0, le=1.0, description="Min P(inside) of a head word.")
    tail_threshold: float = Field(default=0.5, gt=0.0, le=1.0, description="Min P(inside) of a tail word.")
    relation_threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="Min P(related) (pairwise).")
    pair_structure: bool = Field(
        default=False, description="pair_classifier: the classifier also reads each candidate pair's structure "
        "features (sentence distance, co-occurrences, first-sentence mentions, mention frequency).")
    provenance: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> StudentConfig:
        if self.architecture != "drug_conditioned" and self.tail_head != "linear":
            raise ValueError("tail_head applies to the drug_conditioned architecture only")
        if self.pair_structure and self.architecture != "pair_classifier":
            raise ValueError("pair_structure applies to the pair_classifier architecture only")
        return self


__all__ = ["FORMAT_VERSION", "Architecture", "StudentConfig"]
