"""The reproduction config: one YAML file names the task, the folds, the teacher(s), the student and the scoring.

Validated on load (pydantic, ``extra="forbid"``): a typo in a key is an error naming the key, not a silently
ignored setting. ``${data}`` in any string is replaced by the data folder (``$ADE_DISTILL_DATA`` or
``../shared/data``), so configs work on every machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ade_distill.errors import ConfigError
from ade_distill.yamlio import read_yaml_mapping


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FoldsConfig(_Strict):
    k: int = Field(default=10, ge=2, le=50)
    seed: int = 13


class TeacherConfig(_Strict):
    """One teacher. ``spec`` is any teacher spec of ``ade-distill label`` (replay:FILE, openai:MODEL, ...)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    spec: str
    concurrency: int = Field(default=8, ge=1, le=256)
    shots: int = Field(default=0, ge=0, le=32)


class SilverConfig(_Strict):
    """How silver training data is made for each outer fold.

    ``source: train-folds`` — the teacher labels the text of the training folds (the gold labels of those folds
    are never read). ``source: unlabeled`` — the teacher labels sentences of ``unlabeled_path`` (PubMed abstracts
    or MEDLINE XML); the test folds' text is still filtered out.
    """

    source: Literal["train-folds", "unlabeled"] = "train-folds"
    unlabeled_path: str | None = None
    max_unlabeled_sentences: int | None = Field(default=None, ge=1)
    combine: Literal["single", "vote"] = "single"
    min_votes: int = Field(default=1, ge=1, description="vote: keep a relation proposed by at least this many teachers")
    use_scores: bool = Field(default=False, description="vote: store the agreement fraction as span/relation score")
    boundary: Literal["exact", "consensus"] = Field(
        default="exact",
        description="vote: 'exact' counts a vote only for identical offsets; 'consensus' resolves overlapping "
        "variants of a span to the one most teachers chose (ties: the shortest) and counts their votes there; "
        "the scored 'teachers-vote' system of the run uses the same rule",
    )
    vote_system_min_votes: int = Field(
        default=2, ge=1, description="several teachers: votes a relation needs in the scored 'teachers-vote' system"
    )

    @model_validator(mode="after")
    def _check(self) -> SilverConfig:
        if self.source == "unlabeled" and not self.unlabeled_path:
            raise ValueError("silver.source 'unlabeled' needs silver.unlabeled_path")
        if self.boundary != "exact" and self.combine != "vote":
            raise ValueError("silver.boundary 'consensus' needs silver.combine 'vote' (several teachers)")
        return self


class ScoringConfig(_Strict):
    modes: tuple[str, ...] = ("strict", "boundaries", "lenient", "text")
    n_boot: int = Field(default=1000, ge=0, le=100_000)
    seed: int = 0
    subset: Literal["positive", "all"] = Field(
        default="positive",
        description="positive: score test-fold sentences with relations (the paper's protocol); all: every example",
    )


class CurveConfig(_Strict):
    """Student F1 vs silver-set size, on a few folds (extra trainings, so off by default)."""

    fractions: tuple[float, ...] = ()
    folds: tuple[int, ...] = (0,)

    @model_validator(mode="after")
    def _check(self) -> CurveConfig:
        for f in self.fractions:
            if not 0.0 < f < 1.0:
                raise ValueError(f"learning-curve fraction {f} must be in (0, 1); 1.0 is the main run")
        return self


class SupervisedConfig(_Strict):
    enabled: bool = True
    include_negatives: bool = Field(
        default=False,
        description="also train on ADE-NEG sentences of the training folds (the distilled student never sees them)",
    )


class EnsembleConfig(_Strict):
    """Several distilled students trained on the same silver with different seeds, combined by vote.

    Member ``i`` is trained with ``student.seed + i`` (member 0 is the single student of the config); a relation
    (same head and tail offsets and label; with ``boundary: consensus``, the same after mapping overlapping
    span variants onto the members' majority variant) is predicted when at least ``min_votes`` members predict
    it — by default a majority. The supervised reference student stays a single model. The vote is on relations (see
    ``reproduce.ensemble_vote``), and training metrics shown for the student are member 0's.
    """

    seeds: int = Field(default=1, ge=1, le=32, description="number of students (1: no ensemble)")
    min_votes: int | None = Field(default=None, ge=1, description="members that must predict a relation "
                                  "(default: a majority, seeds // 2 + 1)")
    boundary: Literal["exact", "consensus"] = Field(
        default="exact", description="consensus: overlapping variants of a span are first mapped onto the variant "
        "most members predicted, so members that disagree only on a boundary still vote for the same relation")

    @model_validator(mode="after")
    def _check(self) -> EnsembleConfig:
        if self.min_votes is not None and self.min_votes > self.seeds:
            raise ValueError(f"ensemble.min_votes={self.min_votes} exceeds ensemble.seeds={self.seeds}")
        return self

    @property
    def votes_needed(self) -> int:
        return self.min_votes if self.min_votes is not None else self.seeds // 2 + 1


class EncoderAdaptationConfig(_Strict):
    """Continued masked-LM pretraining of the student encoder on unlabeled documents, once for all folds, before
    any student is trained (``ade_distill.student.adapt``). Documents that share a PubMed ID with, or contain the
    text of, any gold example are removed first (every gold example is a test example of some fold). The adapted
    encoder serves the distilled and the supervised student alike."""

    texts: str = Field(description="unlabeled documents: JSONL abstracts, MEDLINE XML (.gz) or text")
    mlm: dict[str, Any] = Field(default_factory=dict, description="fields of student.adapt.AdaptConfig")

    @model_validator(mode="after")
    def _check(self) -> EncoderAdaptationConfig:
        from ade_distill.student.adapt import AdaptConfig

        AdaptConfig(**self.mlm)  # an unknown or invalid option fails on load, naming it
        return self


class SelfTrainingConfig(_Strict):
    """Noisy-student self-training on unlabeled text after the distilled student (see
    ``ade_distill.experiments.self_training``): each round, the latest student labels ``max_sentences`` sentences
    of ``texts`` (gold documents removed), its confident relations plus a sample of relation-free sentences join
    the teacher silver, and a fresh student (seed + ``seed_offset`` × round, ``dropout`` as noise) is trained on
    both. The scored student is the last round's; earlier rounds are scored as ``student:roundK``."""

    texts: str = Field(description="unlabeled documents: JSONL abstracts, MEDLINE XML (.gz) or text")
    rounds: int = Field(default=1, ge=1, le=5)
    max_sentences: int | None = Field(default=10_000, ge=1, description="sentences labelled per round (seeded sample)")
    min_relation_score: float = Field(default=0.8, gt=0.0, le=1.0)
    negative_ratio: float = Field(default=1.0, ge=0.0, le=100.0, description="relation-free per positive sentence")
    dropout: float | None = Field(default=None, ge=0.0, lt=1.0, description="student dropout in the rounds (noise)")
    seed_offset: int = Field(default=100, ge=1)


COMPRESSED = "compressed"  # the system name of the compact student (ade_distill.experiments.reproduce)


def _check_compress_options(options: dict[str, Any]) -> dict[str, Any]:
    from ade_distill.student.compress import CompressConfig

    try:  # an unknown or invalid option fails on load, naming it
        CompressConfig(**options)
    except ValidationError as err:
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())) from None
    return options


class CompressHopConfig(_Strict):
    """One more compression hop after the first: the previous hop's compact student is the (one) teacher of a
    smaller one, on the same transfer set; scored as the system ``compressed:<name>``. ``options`` change the
    first hop's options (e.g. ``{init: teacher, layers: 4}``); the rest are the first hop's."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the system is compressed:<name>")
    options: dict[str, Any] = Field(default_factory=dict, description="fields of student.compress.CompressConfig")

    def resolved(self, first: dict[str, Any]) -> dict[str, Any]:
        """This hop's options: the first hop's changed by its own. A hop that copies its teacher (``init:
        teacher``) keeps no layer choices of the first hop (``layer_map``, ``attention_layers``: they name the
        first hop's layers), only its own."""
        inherited = dict(first)
        if self.options.get("init", first.get("init")) == "teacher":
            for k in ("layer_map", "attention_layers"):
                inherited.pop(k, None)
        return {**inherited, **self.options}


class CompressStageConfig(_Strict):
    """Compression after the distilled student (``ade_distill.student.compress``): the fold's final distilled
    student — every member of its ensemble, their probabilities averaged — is distilled into one compact student
    on a transfer set of the fold's silver texts (labels unused) and, optionally, unlabeled sentences (gold
    documents removed, as for ``adapt_encoder``). The compact student is scored as the system ``compressed``."""

    options: dict[str, Any] = Field(default_factory=dict, description="fields of student.compress.CompressConfig")
    unlabeled: str | None = Field(default=None, description="unlabeled documents: JSONL abstracts, MEDLINE XML or text")
    max_unlabeled_sentences: int | None = Field(default=10_000, ge=1, description="seeded sample of their sentences")
    further: tuple[CompressHopConfig, ...] = Field(default=(), description="further hops, each distilling the "
                                                   "previous hop's compact student into a smaller one")

    @field_validator("options")
    @classmethod
    def _valid_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        return _check_compress_options(options)

    @model_validator(mode="after")
    def _valid_hops(self) -> CompressStageConfig:
        names = [h.name for h in self.further]
        if len(set(names)) != len(names):
            raise ValueError(f"further: hop names must differ, got {names}")
        for hop in self.further:
            try:
                _check_compress_options(hop.resolved(self.options))
            except ValueError as err:
                raise ValueError(f"further hop {hop.name!r}: {err}") from None
        return self

    def hop_options(self) -> list[tuple[str, dict[str, Any]]]:
        """(system name, CompressConfig fields) of each hop, the first (``compressed``) included."""
        return [(COMPRESSED, dict(self.options))] + [(f"{COMPRESSED}:{h.name}", h.resolved(self.options))
                                                     for h in self.further]


class ReproduceConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    task: str = "ade"
    corpus: str = Field(default="ade", description="gold corpus (folds, evaluation): ade or cdr-test, ...")
    folds: FoldsConfig = FoldsConfig()
    teachers: tuple[TeacherConfig, ...] = Field(min_length=1)
    silver: SilverConfig = SilverConfig()
    student: dict[str, Any] = Field(default_factory=dict, description="fields of student TrainConfig")
    ensemble: EnsembleConfig = EnsembleConfig()
    adapt_encoder: EncoderAdaptationConfig | None = None
    self_training: SelfTrainingConfig | None = None
    compress: CompressStageConfig | None = None
    supervised: SupervisedConfig = SupervisedConfig()
    dev_fraction: float = Field(default=0.1, gt=0.0, lt=0.5, description="share of training documents held out")
    scoring: ScoringConfig = ScoringConfig()
    learning_curve: CurveConfig = CurveConfig()
    runs_dir: str = "runs"
    report_dir: str = "reports"

    @model_validator(mode="after")
    def _check(self) -> ReproduceConfig:
        names = [t.name for t in self.teachers]
        if len(set(names)) != len(names):
            raise ValueError(f"teacher names must be unique, got {names}")
        if self.silver.combine == "single" and len(self.teachers) != 1:
            raise ValueError("silver.combine 'single' needs exactly one teacher; use 'vote' for several")
        if self.self_training is not None and self.ensemble.seeds > 1:
            raise ValueError("self_training trains one student per round; use it without ensemble.seeds > 1")
        if self.silver.min_votes > len(self.teachers):
            raise ValueError(f"silver.min_votes={self.silver.min_votes} exceeds the {len(self.teachers)} teachers")
        return self


def _substitute(obj: Any, mapping: dict[str, str]) -> Any:
    if isinstance(obj, str):
        for k, v in mapping.items():
            obj = obj.replace("${" + k + "}", v)
        return obj
    if isinstance(obj, list):
        return [_substitute(x, mapping) for x in obj]
    if isinstance(obj, dict):
        return {k: _substitute(v, mapping) for k, v in obj.items()}
    return obj


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ReproduceConfig:
    """Read and validate a reproduction config.

    Raises:
        ConfigError: unreadable YAML, unknown key, or a value out of range — naming the field.
    """
    from ade_distill.paths import data_dir

    p = Path(path)
    raw = read_yaml_mapping(p, not_found=f"config file {p} not found (shipped configs are in configs/)",
                            not_mapping="expected a mapping at the top level")
    raw = _substitute(raw, {"data": str(data_dir(required=False))})
    if overrides:
        raw = {**raw, **overrides}
    try:
        return ReproduceConfig.model_validate(raw)
    except ValidationError as err:
        msgs = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<top>'}: {e['msg'].removeprefix('Value error, ')}" for e in err.errors()
        )
        raise ConfigError(f"{p}: {msgs}") from None
