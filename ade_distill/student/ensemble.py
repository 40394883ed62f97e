"""`EnsembleExtractor`: several student folders predicting as one, by the relation vote ``reproduce`` uses.

    from ade_distill.student.ensemble import EnsembleExtractor
    ens = EnsembleExtractor.from_pretrained(["runs/a", "runs/b", "runs/c"])          # majority: 2 of 3
    preds = ens.predict(examples)                                                  # same interface as a student

Every member predicts every example (each splitting long texts as it was trained to), then
:func:`ade_distill.experiments.reproduce.ensemble_vote` — the function ``reproduce`` scores ensembles with, not a
copy — keeps a relation (same head and tail offsets and label; with ``boundary="consensus"`` after mapping span
variants onto the members' majority variant) predicted by at least ``min_votes`` members; by default a majority
(``len(members) // 2 + 1``, as ``ensemble.min_votes`` in a reproduction config). A relation's score is the fraction
of members that predicted it; the output holds the spans of the voted relations only (an ensemble is a relation
extractor: entity scores of its output count relation arguments).

The members vote on the texts only: their inputs are stripped of meta (a record's teacher ``status`` must not make
the vote skip it) and the output record gets the input's meta back, plus ``predicted_by`` naming the members.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ade_distill.errors import ConfigError
from ade_distill.records import Example
from ade_distill.student.model import StudentExtractor


def votes_needed(n_members: int, min_votes: int | None, boundary: str = "exact") -> int:
    """``min_votes`` checked against the number of members, or the majority — validated by the reproduction
    config's own :class:`~ade_distill.experiments.config.EnsembleConfig`, so both agree on the default."""
    from pydantic import ValidationError

    from ade_distill.experiments.config import EnsembleConfig

    try:
        return EnsembleConfig(seeds=n_members, min_votes=min_votes, boundary=boundary).votes_needed
    except ValidationError as err:
        problems = "; ".join(
            (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
            for e in err.errors())
        raise ConfigError(f"invalid ensemble of {n_members} members: {problems}".replace(
            "ensemble.seeds", "members").replace("ensemble.min_votes", "min_votes")) from None


class EnsembleExtractor:
    """A vote of several :class:`StudentExtractor` s with the same task (see the module docstring)."""

    def __init__(self, members: Sequence[StudentExtractor], *, min_votes: int | None = None,
                 boundary: str = "exact") -> None:
        if not members:
            raise ConfigError("an ensemble needs at least one student")
        tasks = {m.task.name for m in members}
        if len(tasks) > 1:
            raise ConfigError(f"the students of an ensemble must share one task, got {sorted(tasks)}")
        self.members = list(members)
        self.boundary = boundary
        self.min_votes = votes_needed(len(self.members), min_votes, boundary)
        self.task = self.members[0].task

    @classmethod
    def from_pretrained(cls, paths: Sequence[str | Path], *, min_votes: int | None = None, boundary: str = "exact",
                        quantize: bool = False, runtime: str = "torch", precision: str = "fp32",
                        compile: bool = False) -> EnsembleExtractor:
        """Load every member folder (see :meth:`StudentExtractor.from_pretrained` for ``quantize``, ``runtime``,
        ``precision`` and ``compile``)."""
        if not paths:
            raise ConfigError("an ensemble needs at least one student folder")
        votes_needed(len(paths), min_votes, boundary)  # fail before loading any model
        members = [StudentExtractor.from_pretrained(p, quantize=quantize, runtime=runtime, precision=precision,
                                                    compile=compile) for p in paths]
        return cls(members, min_votes=min_votes, boundary=boundary)

    def member_predictions(self, examples: Sequence[Example], batch_size: int = 64, *,
                           split: str = "auto") -> dict[str, list[Example]]:
        """Each member's predictions of the examples' texts (inputs stripped to id and text), by member name."""
        texts = [Example(id=e.id, text=e.text) for e in examples]
        return {f"member{k}": m.predict(texts, batch_size=batch_size, split=split)
                for k, m in enumerate(self.members)}

    def vote(self, examples: Sequence[Example], members: dict[str, list[Example]]) -> list[Example]:
        """The vote of member predictions (:func:`~ade_distill.experiments.reproduce.ensemble_vote`), one output
        record per input example with the input's meta and ``predicted_by``."""
        from ade_distill.experiments.reproduce import ensemble_vote

        voted = ensemble_vote(members, examples, self.min_votes, self.boundary)
        first = next(iter(members.values()))
        out = []
        for i, (ex, v) in enumerate(zip(examples, voted, strict=True)):
            meta: dict[str, Any] = {**ex.meta, **v.meta, "predicted_by": self.describe()}
            meta.update({k: first[i].meta[k] for k in ("sentences", "windows") if k in first[i].meta})
            if any(preds[i].meta.get("truncated") for preds in members.values()):
                meta["truncated"] = True
            out.append(v.model_copy(update={"meta": meta}))
        return out

    def predict(self, examples: Sequence[Example], batch_size: int = 64, *, split: str = "auto") -> list[Example]:
        """Predict like :meth:`StudentExtractor.predict` (same ids, texts and order), by vote of the members."""
        return self.vote(examples, self.member_predictions(examples, batch_size, split=split))

    def describe(self) -> dict[str, Any]:
        return {"ensemble": [m.describe() for m in self.members], "min_votes": self.min_votes,
                "boundary": self.boundary}


def load_extractor(paths: Sequence[str | Path], *, min_votes: int | None = None, boundary: str = "exact",
                   quantize: bool = False, runtime: str = "torch",
                   precision: str = "fp32", compile: bool = False) -> StudentExtractor | EnsembleExtractor:
    """One folder: the student itself (``min_votes`` must then be unset or 1); several: their ensemble."""
    if len(paths) == 1:
        votes_needed(1, min_votes, boundary)
        return StudentExtractor.from_pretrained(paths[0], quantize=quantize, runtime=runtime, precision=precision,
                                                compile=compile)
    return EnsembleExtractor.from_pretrained(paths, min_votes=min_votes, boundary=boundary, quantize=quantize,
                                             runtime=runtime, precision=precision, compile=compile)


__all__ = ["EnsembleExtractor", "load_extractor", "votes_needed"]
