"""`ade-distill reproduce CONFIG.yaml`: the paper's experiment, stage by stage, cached and resumable.

    folds → teacher labels (text only) → silver per fold (training folds, test text filtered out)
          → distilled student (optionally: self-training rounds, a seed ensemble) → predictions on the test fold
          → optionally compression: that student (or ensemble) → one compact student → predictions on the test fold
          → supervised student (gold training folds) → predictions on the test fold
          → scores per fold → pooled scores over folds → report

Every stage leaves files under ``runs/<name>/`` and a ``stage.json`` marker keyed by its inputs, so a rerun
with the same config reuses finished stages, and a run stopped at any point (``--max-minutes``, a crash, the
end of a session) resumes with the next unfinished stage.
"""

from __future__ import annotations

import json
import logging
import platform
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ade_distill.data.corpora import load_corpus
from ade_distill.data.folds import Folds, check_folds, make_folds
from ade_distill.experiments.combine import SilverStats, expand_document_relations, single_teacher, vote
from ade_distill.experiments.config import COMPRESSED, ReproduceConfig, TeacherConfig
from ade_distill.experiments.protocol import filter_silver, strip_labels
from ade_distill.experiments.stages import Stage, drop_added_defaults, file_hash, make_key
from ade_distill.records import Example, read_examples, write_examples
from ade_distill.tasks import TaskSpec, load_task

if TYPE_CHECKING:
    from ade_distill.student.train import TrainConfig

log = logging.getLogger(__name__)

STUDENT = "student"
SUPERVISED = "supervised"
VOTE = "teachers-vote"


@dataclass
class RunOptions:
    folds: int | None = None  # run only folds 0..folds-1
    only_folds: tuple[int, ...] = ()  # or run only these folds (e.g. a dev fold kept out of reporting)
    max_minutes: float | None = None
    progress: bool = True
    command: str = ""


@dataclass
class FoldResult:
    fold: int
    predictions: dict[str, list[Example]]
    gold: list[Example]
    scores: dict[str, Any]
    silver: dict[str, Any]
    contamination: dict[str, Any]
    timings: dict[str, float]
    student_speed: float | None = None


@dataclass
class RunResult:
    config: ReproduceConfig
    folds_done: list[FoldResult] = field(default_factory=list)
    folds_planned: int = 0
    stopped_early: bool = False
    teacher_summaries: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


RESULT_FORMAT = 1
# Options introduced after RESULT_FORMAT 1, with their defaults: left out of stage keys while at the default, so
# the models and fold results of configs that do not use them (including the committed reports) stay valid.
# (a nested option before its parent: "ensemble.boundary" is dropped first, then a default "ensemble" whole)
ADDED_CONFIG_OPTIONS: dict[str, Any] = {"silver.boundary": "exact", "ensemble.boundary": "exact",
                                        "ensemble": {"seeds": 1, "min_votes": None}, "adapt_encoder": None,
                                        "self_training": None, "compress.options.init": "encoder",
                                        "compress.further": [], "compress": None}
ADDED_COMPRESS_OPTIONS: dict[str, Any] = {"init": "encoder"}  # CompressConfig fields added later, at their defaults: out of keys
COMPRESS_KEY_EXCLUDE = {"threads", "check_texts"}  # they do not change the compressed model
ADDED_TRAIN_OPTIONS: dict[str, Any] = {"tail_head": "linear", "window_long_texts": False,
                                       "calibrate_thresholds": False, "precision": "fp32",
                                       "soft_targets": False, "soft_temperature": 1.0,
                                       "pair_structure": False}


def compress_key_dict(config: Any) -> dict[str, Any]:
    """The compression settings as they enter stage keys."""
    return drop_added_defaults(config.model_dump(mode="json", exclude=COMPRESS_KEY_EXCLUDE), ADDED_COMPRESS_OPTIONS)


def train_key_dict(config: TrainConfig) -> dict[str, Any]:
    """The student settings as they enter stage keys."""
    return drop_added_defaults(config.model_dump(mode="json"), ADDED_TRAIN_OPTIONS)


def folder_name(system: str) -> str:
    """A system's name as a file or fold sub-folder name (``compressed:l4`` → ``compressed_l4``)."""
    return system.replace(":", "_").replace("/", "_")


def file_name(system: str) -> str:
    """File name of a system's predictions (``teacher:gpt-4`` → ``teacher_gpt-4.jsonl``)."""
    return folder_name(system) + ".jsonl"


def member_folder(seed: int) -> str:
    """Fold sub-folder of the seed ensemble's member with this seed (member 0 is ``student``)."""
    return f"{STUDENT}_seed{seed}"


def round_folder(rnd: int) -> str:
    """Fold sub-folder of self-training round ``rnd``'s student (round 0 is ``student``)."""
    return f"{STUDENT}_round{rnd}" if rnd else STUDENT


def member_name(seed: int) -> str:
    """System name of one member of a seed ensemble of distilled students."""
    return f"{STUDENT}:seed{seed}"


def ensemble_vote(members: dict[str, list[Example]], test: Sequence[Example], min_votes: int,
                  boundary: str = "exact") -> list[Example]:
    """Relations predicted by at least ``min_votes`` members (exact offsets and label, or after boundary
    consensus: see ``combine.vote``), one example per test example in test order; each relation's score is the
    fraction of members that predicted it.

    The vote is on relations: the output holds the spans of the voted relations only, so entity-level scores of
    an ensemble count relation arguments, not every span a member tagged (compare ensembles at relation level).
    """
    voted, _ = vote(members, min_votes=min_votes, use_scores=True, boundary=boundary)
    by_text = {e.text: e for e in voted}
    out = []
    for g in test:
        e = by_text.get(g.text)
        out.append(Example(id=g.id, text=g.text, spans=e.spans if e else (), relations=e.relations if e else (),
                           meta={"ensemble_members": len(members)}))
    return out


def save_fold_result(fr: FoldResult, stage: Stage) -> None:
    """Write a finished fold (predictions, scores, silver and guard counts) into ``stage.folder``."""
    folder = stage.start()
    (folder / "predictions").mkdir(exist_ok=True)
    for system, preds in fr.predictions.items():
        write_examples(folder / "predictions" / file_name(system), preds)
    payload = {"fold": fr.fold, "systems": list(fr.predictions), "gold_ids": [e.id for e in fr.gold],
               "scores": fr.scores, "silver": fr.silver, "contamination": fr.contamination,
               "timings": fr.timings, "student_speed": fr.student_speed}
    (folder / "fold.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    stage.finish({"fold": fr.fold})


def load_fold_result(folder: Path, by_id: dict[str, Example]) -> FoldResult:
    raw = json.loads((folder / "fold.json").read_text(encoding="utf-8"))
    preds = {s: list(read_examples(folder / "predictions" / file_name(s))) for s in raw["systems"]}
    return FoldResult(raw["fold"], preds, [by_id[i] for i in raw["gold_ids"]], raw["scores"], raw["silver"],
                      raw["contamination"], raw["timings"], raw["student_speed"])



def _same_encoder(a: str, b: str) -> bool:
    """Whether two encoder names (aliases, hub names, folders) name the same weights. Different names that cannot
    both be resolved here (an encoder package not installed) are taken as different, without resolving them."""
    from ade_distill.errors import ConfigError
    from ade_distill.student.encoders import resolve_encoder

    if a == b:
        return True
    try:
        return resolve_encoder(a) == resolve_encoder(b)
    except ConfigError:
        return False

class Reproduction:
    """One reproduction run of a validated config."""

    def __init__(self, cfg: ReproduceConfig, opts: RunOptions | None = None) -> None:
        from rich.console import Console

        self.cfg = cfg
        self.opts = opts or RunOptions()
        self.console = Console(stderr=True, quiet=not self.opts.progress)
        self.task: TaskSpec = load_task(cfg.task)
        self.gold: list[Example] = load_corpus(cfg.corpus)
        self.by_id = {e.id: e for e in self.gold}
        self.run_dir = Path(cfg.runs_dir) / cfg.name
        self.t0 = time.time()
        self.result = RunResult(config=cfg)
        self._unlabeled: dict[tuple[str, int | None], list[Example]] = {}
        from ade_distill.student.train import TrainConfig

        self.train_config = TrainConfig.build(**cfg.student)
        # The supervised student is the reference "same student on gold": the same settings minus the options
        # that only concern distillation (silver confidences; thresholds calibrated on silver dev), so configs
        # that differ only in those share their supervised models.
        # (pair_classifier keeps its relation-threshold calibration: on gold dev it is part of the classifier.)
        self.supervised_config = self.train_config.model_copy(
            update={"confidence_weighting": False, "min_confidence": 0.0, "soft_targets": False,
                    "calibrate_thresholds": self.train_config.calibrate_thresholds
                    and self.train_config.architecture == "pair_classifier"})
        # An adapted encoder: both students load it from its content-addressed folder; stage keys name it by
        # its key (not by the folder, which depends on runs_dir).
        self.adapted: tuple[Path, str, str] | None = None  # (folder, name in keys, stage key)
        self.base_encoder = self.train_config.encoder
        if cfg.compress is not None:
            self._check_compress()
        if cfg.adapt_encoder is not None:
            akey = self.adaptation_key()
            folder = Path(cfg.runs_dir) / "encoders" / akey
            self.adapted = (folder, f"{self.base_encoder}+mlm:{akey}", akey)
            self.train_config = self.train_config.model_copy(update={"encoder": str(folder)})
            self.supervised_config = self.supervised_config.model_copy(update={"encoder": str(folder)})

    def _check_compress(self) -> None:
        """Refuse at once, not after the fold's students have trained, what the compress stage cannot do."""
        from ade_distill.errors import ConfigError

        cc = self.cfg.compress
        assert cc is not None
        if self.train_config.architecture != "drug_conditioned":
            raise ConfigError(f"compress: the distilled student must be drug_conditioned (the compact student learns "
                              f"both tagging stages), not {self.train_config.architecture}")
        if cc.unlabeled and not Path(cc.unlabeled).is_file():
            raise ConfigError(f"compress.unlabeled: {cc.unlabeled} not found")
        for _, options in cc.hop_options():
            self.compress_config(options)  # raises ConfigError naming a bad option
        if cc.options.get("init") == "teacher":
            first = self.compress_config()
            why = (f"the distilled student is an ensemble of {self.cfg.ensemble.seeds}"
                   if self.cfg.ensemble.seeds > 1 else
                   "the distilled student's encoder is adapted (adapt_encoder), a folder no option can name"
                   if self.cfg.adapt_encoder is not None else
                   f"compress.options.encoder is {first.encoder!r} but the distilled student's is {self.base_encoder!r}"
                   if not _same_encoder(first.encoder, self.base_encoder) else None)
            if why:
                raise ConfigError(f"compress.options.init: 'teacher' copies the one distilled student, but {why}; "
                                  "use init 'encoder' for the first hop")

    def adaptation_key(self) -> str:
        """Key of the adaptation stage: base encoder, MLM options, the texts file and the gold texts guarded."""
        ac = self.cfg.adapt_encoder
        assert ac is not None
        from ade_distill.errors import ConfigError
        from ade_distill.student.adapt import AdaptConfig

        if not Path(ac.texts).is_file():
            raise ConfigError(f"adapt_encoder.texts: {ac.texts} not found (the key of the adapted encoder, and so "
                              "of every result of this config, depends on that file)")
        mlm = AdaptConfig(**ac.mlm).model_dump(mode="json", exclude={"threads"})
        return make_key("adapt", self.base_encoder, mlm, file_hash(ac.texts),
                        [(e.id, e.text) for e in self.gold])

    def train_key(self, config: TrainConfig) -> dict[str, Any]:
        """The student settings as they enter stage keys: an adapted encoder named by its key; an encoder given
        as a local folder also by the hash of its weights (a folder replaced in place is a new encoder)."""
        out = train_key_dict(config)
        if self.adapted is not None and out.get("encoder") == str(self.adapted[0]):
            out["encoder"] = self.adapted[1]
        elif ("/" in config.encoder or "\\" in config.encoder) and Path(config.encoder).is_dir():
            weights = sorted(Path(config.encoder).glob("*.safetensors")) or sorted(Path(config.encoder).glob("*.bin"))
            out["encoder_weights"] = [file_hash(w) for w in weights]
        return out

    def adapt_encoder(self) -> None:
        """Run (or reuse) the encoder adaptation stage of ``adapt_encoder`` (before the first training)."""
        from ade_distill.data.unlabeled import iter_documents
        from ade_distill.experiments.protocol import filter_documents
        from ade_distill.student.adapt import AdaptConfig, adapt_encoder

        ac = self.cfg.adapt_encoder
        assert ac is not None and self.adapted is not None
        folder, name, akey = self.adapted
        stage = Stage(folder.with_name(folder.name + "-stage"), akey)
        if stage.done and (folder / "config.json").is_file():
            self._log(f"reuse adapted encoder {folder}")
            return
        docs, guard = filter_documents(list(iter_documents(ac.texts)), self.gold)
        self._log(f"adapt encoder {name}: masked-LM on {guard['documents_out']:,} documents "
                  f"({guard['removed_by_pmid'] + guard['removed_by_text']} removed: gold PMID or text) → {folder}")
        stage.start()
        mlm = {"threads": self.train_config.threads, **ac.mlm}
        summary = adapt_encoder(self.base_encoder, [d.text for d in docs], folder,
                                AdaptConfig(**mlm), progress=self.opts.progress)
        summary.pop("curve", None)
        stage.finish({**summary, "guard": guard})

    # -- helpers ---------------------------------------------------------------------------------------------
    def _log(self, msg: str) -> None:
        from rich.markup import escape

        elapsed = (time.time() - self.t0) / 60
        self.console.print(f"[dim]{elapsed:6.1f} min[/dim] {escape(msg)}")

    def out_of_time(self) -> bool:
        m = self.opts.max_minutes
        return m is not None and (time.time() - self.t0) / 60 >= m

    def scored(self, examples: Sequence[Example]) -> list[Example]:
        if self.cfg.scoring.subset == "positive":
            return [e for e in examples if e.relations]
        return list(examples)

    # -- stages ----------------------------------------------------------------------------------------------
    def make_folds(self) -> Folds:
        fc = self.cfg.folds
        path = self.run_dir / f"folds_{self.cfg.corpus}_k{fc.k}_s{fc.seed}.json"
        if path.is_file():
            folds = Folds.load(path)
            check_folds(folds, self.gold, path)
            return folds
        folds = make_folds(self.gold, k=fc.k, seed=fc.seed, corpus=self.cfg.corpus)
        folds.save(path)
        return folds

    def teacher_labels(self, teacher: TeacherConfig, inputs: list[Example], tag: str) -> list[Example]:
        """Label ``inputs`` (text only) with one teacher; cached by the label job and by the stage marker."""
        from ade_distill.teacher.label import label_examples

        folder = self.run_dir / "teacher" / teacher.name / tag
        key = make_key("teacher", teacher.model_dump(), self.cfg.task, [(e.id, e.text) for e in inputs])
        stage = Stage(folder, key)
        out = folder / "silver.jsonl"
        if not stage.done:
            self._log(f"teacher [bold]{teacher.name}[/bold] labels {len(inputs):,} texts ({tag})")
            stage.start()
            summary = label_examples(
                self.task, teacher.spec, inputs, out, cache_path=folder / "cache.sqlite",
                concurrency=teacher.concurrency, shots=teacher.shots, progress=self.opts.progress,
            )
            stage.finish(summary.to_dict())
        self.result.teacher_summaries[f"{teacher.name}/{tag}"] = stage.summary
        return list(read_examples(out))

    def _silver_for_fold(
        self, teacher_records: dict[str, list[Example]], train_ids: set[str], test: list[Example]
    ) -> tuple[list[Example], SilverStats, dict[str, Any]]:
        def tag_pmids(ex: Example) -> Example:
            srcs = [s for s in ex.meta.get("source_ids", [ex.id]) if s in self.by_id]
            pm = sorted({self.by_id[s].document_id() for s in srcs}) or [ex.document_id()]
            return ex.model_copy(update={"meta": {**ex.meta, "source_pmids": pm}})

        per_teacher: dict[str, list[Example]] = {}
        contamination: dict[str, Any] = {}
        for name, recs in teacher_records.items():
            if self.cfg.silver.source == "train-folds":
                recs = [r for r in recs if any(s in train_ids for s in r.meta.get("source_ids", [r.id]))]
                recs = [tag_pmids(r) for r in recs]
            kept, rep = filter_silver(recs, test)
            if not rep.clean:
                raise RuntimeError(f"contamination guard failed for teacher {name}: {rep.as_dict()}")
            per_teacher[name] = kept
            contamination[name] = rep.as_dict()
        if self.cfg.silver.combine == "single":
            silver, stats = single_teacher(next(iter(per_teacher.values())))
        else:
            silver, stats = vote(per_teacher, min_votes=self.cfg.silver.min_votes,
                                 use_scores=self.cfg.silver.use_scores, boundary=self.cfg.silver.boundary)
        return silver, stats, contamination

    def _dev_split(self, examples: list[Example], fold: int) -> tuple[list[Example], list[Example]]:
        pmids = sorted({e.document_id() for e in examples})
        rng = random.Random(self.cfg.folds.seed * 1000 + fold)
        dev = set(rng.sample(pmids, max(1, int(len(pmids) * self.cfg.dev_fraction))))
        return [e for e in examples if e.document_id() not in dev], [e for e in examples if e.document_id() in dev]

    def _train_and_predict(
        self, name: str, folder: Path, train: list[Example], dev: list[Example], test: list[Example],
        config: TrainConfig | None = None,
    ) -> tuple[list[Example], float, float]:
        """Train (or reuse) a student on ``train``/``dev`` and predict ``test``.

        The training data goes to ``folder`` (for inspection); models are content-addressed under
        ``<runs_dir>/models/<key>`` — the key covers the student config, the task and the exact training and dev
        files — so two configs that train on the same data (e.g. the supervised student of the single- and the
        multi-teacher runs) share one model. Returns (predictions, sentences/s of prediction, training seconds).
        """
        from ade_distill.student.train import train_student

        config = config or self.train_config
        if config.architecture == "pair_classifier":  # entity pairs over gold mentions (pair_classifier.py)
            train, dev = self._onto_gold_entities(train), self._onto_gold_entities(dev)
        elif self.task.unit == "document":  # concept-level relations: link every mention pair (see combine.py)
            train = [expand_document_relations(e) for e in train]
            dev = [expand_document_relations(e) for e in dev]
        folder.mkdir(parents=True, exist_ok=True)
        write_examples(folder / "train.jsonl", train)
        write_examples(folder / "dev.jsonl", dev)
        tkey = make_key("train", self.train_key(config), self.task.model_dump(exclude={"student_architecture"}),
                        file_hash(folder / "train.jsonl"), file_hash(folder / "dev.jsonl"))
        model_dir = Path(self.cfg.runs_dir) / "models" / tkey
        tstage = Stage(model_dir, tkey)
        if not tstage.done:
            if self.adapted is not None:
                self.adapt_encoder()
            self._log(f"train {name}: {len(train):,} train / {len(dev):,} dev examples → {model_dir}")
            tstage.start()
            train_student(self.task, train, dev, config, model_dir)
            earlier = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8")).get(
                "earlier_attempts_seconds") or 0.0  # an interrupted training it resumed
            tstage.finish({"train": len(train), "dev": len(dev), "for": f"{self.cfg.name}/{folder.name}"},
                          earlier_seconds=earlier)
        else:
            self._log(f"reuse {name} model {model_dir}")
        (folder / "model.txt").write_text(f"{model_dir}\n", encoding="utf-8")
        preds, speed = self._predict(model_dir, test)
        return preds, speed, tstage.seconds

    def _onto_gold_entities(self, examples: list[Example]) -> list[Example]:
        """pair_classifier (gold-entities setting): a silver record becomes the gold mentions of its text with
        the teacher's relations mapped onto their concepts; gold records pass as they are."""
        from ade_distill.student.pair_classifier import onto_gold_entities

        out, unmapped = [], 0
        for e in examples:
            gold = self.by_id.get(e.document_id()) or self.by_id.get(e.id)
            if gold is None or gold is e or gold.text != e.text or any(s.meta.get("concepts") for s in e.spans):
                out.append(e)
                continue
            mapped, n = onto_gold_entities(e, gold, self.task)
            out.append(mapped)
            unmapped += n
        if unmapped:
            self._log(f"pair_classifier: {unmapped} teacher relations map to no gold entity (left out)")
        return out

    @staticmethod
    def _predict(model_dir: Path, examples: list[Example]) -> tuple[list[Example], float]:
        """Predictions of the model in ``model_dir`` (a train stage folder) on ``examples``, cached in a stage
        inside it; returns them and the prediction speed (sentences/s)."""
        from ade_distill.student.model import StudentExtractor

        pkey = make_key("predict", model_dir.name, [(e.id, e.text) for e in examples])
        pstage = Stage(model_dir / f"predict-{pkey}", pkey)
        pred_path = pstage.folder / "predictions.jsonl"
        if not pstage.done:
            pstage.start()
            model = StudentExtractor.from_pretrained(model_dir)
            t = time.perf_counter()
            inputs = strip_labels(examples)
            if model.config.architecture == "pair_classifier":  # given (gold) entity mentions, no relations
                inputs = [i.model_copy(update={"spans": e.spans}) for i, e in zip(inputs, examples, strict=True)]
            preds = model.predict(inputs)
            dt = time.perf_counter() - t
            write_examples(pred_path, preds)
            pstage.finish({"sentences_per_second": len(examples) / dt if dt > 0 else None, "n": len(examples)})
        return list(read_examples(pred_path)), pstage.summary.get("sentences_per_second") or 0.0

    def _ensemble(
        self, fold_dir: Path, train: list[Example], dev: list[Example], test: list[Example],
        first: list[Example], timings: dict[str, float],
    ) -> tuple[list[Example], list[float]] | None:
        """Train the other members of the seed ensemble (member 0, ``first``, is the config's student) and
        return their vote on ``test`` and the members' prediction speeds; None when the time limit stops it
        (finished members stay cached)."""
        ec = self.cfg.ensemble
        members = {member_name(self.train_config.seed): first}
        speeds: list[float] = []
        for i in range(1, ec.seeds):
            if self.out_of_time():
                return None
            seed = self.train_config.seed + i
            cfg = self.train_config.model_copy(update={"seed": seed})
            name = member_name(seed)
            members[name], speed, seconds = self._train_and_predict(name, fold_dir / member_folder(seed),
                                                                    train, dev, test, cfg)
            timings[STUDENT] = timings.get(STUDENT, 0.0) + seconds
            speeds.append(speed)
        return ensemble_vote(members, test, ec.votes_needed, ec.boundary), speeds

    def unlabeled_sentences(self) -> list[Example]:
        """The sentences self-training labels (see :meth:`unlabeled_pool`)."""
        st = self.cfg.self_training
        assert st is not None
        return self.unlabeled_pool(st.texts, st.max_sentences, "self-training")

    def unlabeled_pool(self, texts: str, max_sentences: int | None, purpose: str) -> list[Example]:
        """``texts`` without gold documents (as for ``adapt_encoder``), split into sentences, a seeded sample of
        ``max_sentences``; loaded once per run."""
        key = (texts, max_sentences)
        if key not in self._unlabeled:
            from ade_distill.data.unlabeled import iter_documents, to_sentences
            from ade_distill.experiments.protocol import filter_documents
            from ade_distill.experiments.self_training import sample_sentences

            docs, guard = filter_documents(list(iter_documents(texts)), self.gold)
            sents = [s for s in to_sentences(docs) if s.text.strip()]
            self._unlabeled[key] = sample_sentences(sents, max_sentences, self.cfg.folds.seed)
            self._log(f"{purpose} text: {len(self._unlabeled[key]):,} of {len(sents):,} sentences from "
                      f"{guard['documents_out']:,} documents ({guard['removed_by_pmid'] + guard['removed_by_text']} "
                      "removed: gold PMID or text)")
        return self._unlabeled[key]

    def compress_config(self, options: dict[str, Any] | None = None) -> Any:
        """A ``compress`` hop's :class:`~ade_distill.student.compress.CompressConfig` (default: the first hop's
        options); ``threads`` defaults to the student's."""
        from ade_distill.student.compress import CompressConfig

        cc = self.cfg.compress
        assert cc is not None
        return CompressConfig.build(**{"threads": self.train_config.threads,
                                       **(cc.options if options is None else options)})

    def _final_students(self, fold_dir: Path) -> list[Path]:
        """Model folders of the fold's scored distilled student: the last self-training round's, or every member
        of its seed ensemble."""
        st = self.cfg.self_training
        names = [round_folder(st.rounds if st is not None else 0)]
        names += [member_folder(self.train_config.seed + i) for i in range(1, self.cfg.ensemble.seeds)]
        return [Path((fold_dir / n / "model.txt").read_text(encoding="utf-8").strip()) for n in names]

    def _compress(self, fold_dir: Path, silver: list[Example], test: list[Example], timings: dict[str, float]
                  ) -> tuple[dict[str, list[Example]], dict[str, Any]] | None:
        """The ``compress`` stage: the final distilled student(s) distilled into one compact student on the
        fold's silver texts plus unlabeled sentences, then each further hop's student from the previous one on the
        same texts; each cached under ``<runs_dir>/models/<key>`` like a trained student. Returns each hop's
        predictions on ``test`` (by system name) and the stage's counts (a further hop's under ``further``);
        None when the time limit stops it (finished hops stay cached)."""
        cc = self.cfg.compress
        assert cc is not None
        teachers = self._final_students(fold_dir)
        unlabeled = self.unlabeled_pool(cc.unlabeled, cc.max_unlabeled_sentences, "compression") \
            if cc.unlabeled else []
        texts = list(dict.fromkeys(t for t in [e.text for e in silver] + [u.text for u in unlabeled] if t.strip()))
        counts = {"teachers": len(teachers), "silver_texts": len(silver), "unlabeled_sentences": len(unlabeled),
                  "transfer_texts": len(texts)}
        preds: dict[str, list[Example]] = {}
        stats: dict[str, Any] = dict(counts)
        for system, options in cc.hop_options():
            if system != COMPRESSED and self.out_of_time():
                return None
            model_dir = self._compress_hop(system, fold_dir, teachers, texts, options,
                                           {**counts, "teachers": len(teachers)}, timings)
            preds[system], speed = self._predict(model_dir, test)
            summary = json.loads((model_dir / "compress.json").read_text(encoding="utf-8"))
            hop = {"stage1_kl_before": summary.get("stage1_kl_before"),
                   "stage1_kl_after": summary.get("stage1_kl_after"), "sentences_per_second": round(speed, 1)}
            if system == COMPRESSED:
                stats.update(hop)
            else:
                stats.setdefault("further", {})[system] = hop
            teachers = [model_dir]
        return preds, stats

    def _compress_hop(self, system: str, fold_dir: Path, teachers: list[Path], texts: list[str],
                      options: dict[str, Any], counts: dict[str, Any], timings: dict[str, float]) -> Path:
        """One compression hop (cached by its options, its teachers' model keys and the texts); the model folder."""
        from ade_distill.errors import ConfigError
        from ade_distill.student.compress import compress_student

        cfg = self.compress_config(options)
        key = make_key("compress", compress_key_dict(cfg), [t.name for t in teachers], texts)
        model_dir = Path(self.cfg.runs_dir) / "models" / key
        stage = Stage(model_dir, key)
        if not stage.done:
            self._log(f"{system}: compress {len(teachers)} student(s) on {len(texts):,} texts → {model_dir}")
            stage.start()
            try:
                compress_student(teachers, texts, model_dir, cfg, provenance={"transfer": counts})
            except ConfigError as err:  # e.g. a hop's layers out of its teacher's range: name the hop
                raise ConfigError(f"{system}: {err}") from None
            earlier = json.loads((model_dir / "compress.json").read_text(encoding="utf-8")).get(
                "earlier_attempts_seconds") or 0.0  # an interrupted compression it resumed
            stage.finish({**counts, "for": f"{self.cfg.name}/{fold_dir.name}"}, earlier_seconds=earlier)
        else:
            self._log(f"{system}: reuse compressed model {model_dir}")
        folder = fold_dir / folder_name(system)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.txt").write_text(f"{model_dir}\n", encoding="utf-8")
        timings[system] = stage.seconds
        return model_dir

    def _self_train(
        self, fold_dir: Path, train: list[Example], dev: list[Example], test: list[Example],
        preds: dict[str, list[Example]], timings: dict[str, float],
    ) -> list[dict[str, Any]] | None:
        """Rounds of self-training after the distilled student (see ``experiments.self_training``): the scored
        student becomes the last round's, earlier rounds are kept as ``student:roundK``. Returns the pseudo-silver counts
        per round (kept with the fold's silver counts); None when the time limit stops it (finished rounds stay cached)."""
        from ade_distill.experiments.self_training import select_pseudo

        st = self.cfg.self_training
        assert st is not None
        model_dir = Path((fold_dir / STUDENT / "model.txt").read_text(encoding="utf-8").strip())
        rounds: list[dict[str, Any]] = []
        for rnd in range(1, st.rounds + 1):
            if self.out_of_time():
                return None
            labelled, speed = self._predict(model_dir, self.unlabeled_sentences())
            pseudo, counts = select_pseudo(labelled, min_relation_score=st.min_relation_score,
                                           negative_ratio=st.negative_ratio, seed=self.cfg.folds.seed + rnd,
                                           round_=rnd)
            self._log(f"self-training round {rnd}: pseudo-silver {counts}")
            update: dict[str, Any] = {"seed": self.train_config.seed + st.seed_offset * rnd}
            if st.dropout is not None:
                update["dropout"] = st.dropout
            cfg = self.train_config.model_copy(update=update)
            preds[f"{STUDENT}:round{rnd - 1}"] = preds[STUDENT]
            folder = fold_dir / round_folder(rnd)
            preds[STUDENT], _, seconds = self._train_and_predict(f"{STUDENT} round {rnd}", folder,
                                                                 train + pseudo, dev, test, cfg)
            timings[f"{STUDENT}:round{rnd}"] = seconds
            model_dir = Path((folder / "model.txt").read_text(encoding="utf-8").strip())
            rounds.append({"round": rnd, **counts, "labelling_sentences_per_second": round(speed, 1)})
        return rounds

    def teacher_predictions(self, records: list[Example], test: list[Example]) -> list[Example]:
        """The teacher as a system: its (grounded and ungrounded) output on each test text, under the test id.

        A record the teacher refused or could not produce counts as predicting nothing (and is listed in the
        teacher summary), which is what a user of that teacher would get.
        """
        by_text = {r.text: r for r in records}
        out = []
        for g in test:
            r = by_text.get(g.text)
            if r is None or str(r.meta.get("status", "ok")) not in ("ok", "truncated"):
                meta = {"status": r.meta.get("status") if r is not None else "missing"}
                out.append(Example(id=g.id, text=g.text, meta=meta))
            else:
                out.append(Example(id=g.id, text=g.text, spans=r.spans, relations=r.relations,
                                   meta={"status": r.meta.get("status", "ok")}))
        return out

    def result_key(self, folds: Folds, *parts: object) -> str:
        """Key of a fold-level result: the whole config (paths to the data folder written as ``${data}``, so the
        key is the same on every machine), the resolved student settings, the task and the folds."""
        from ade_distill.paths import data_dir

        cfg = self.cfg.model_dump(mode="json", exclude={"runs_dir", "report_dir", "description", "learning_curve"})
        blob = json.dumps(drop_added_defaults(cfg, ADDED_CONFIG_OPTIONS), sort_keys=True).replace(str(data_dir(required=False)), "${data}")
        extra: list[Any] = []
        if self.cfg.compress is not None:  # the resolved compression settings and the unlabeled file's content
            cc = self.cfg.compress
            extra = ["compress", compress_key_dict(self.compress_config()),
                     file_hash(cc.unlabeled) if cc.unlabeled else None]
            if cc.further:  # the resolved settings of the further hops (configs without them keep their keys)
                extra.append([compress_key_dict(self.compress_config(o)) for _, o in cc.hop_options()[1:]])
        return make_key("result", RESULT_FORMAT, blob, self.train_key(self.train_config),
                        self.task.model_dump(mode="json", exclude={"student_architecture"}), folds.corpus_hash, folds.k, folds.seed,
                        *extra, *parts)

    def run_fold(
        self,
        folds: Folds,
        fold: int,
        teacher_records: dict[str, list[Example]],
        silver_pool: dict[str, list[Example]],
    ) -> FoldResult | None:
        """One outer fold. ``teacher_records``: teacher output on the gold text (to score the teacher);
        ``silver_pool``: teacher output the silver is drawn from (the same, or unlabeled text).

        A finished fold is saved as a self-contained result (``fold{k}/result``: predictions, scores, counts)
        that the report folder carries, so a later session on another machine can resume without the models
        (``--reuse-reported-folds``)."""
        result = Stage(self.run_dir / f"fold{fold}" / "result", self.result_key(folds, "fold", fold))
        if result.done:
            self._log(f"fold {fold}: reuse finished result")
            return load_fold_result(result.folder, self.by_id)
        fr = self._compute_fold(folds, fold, teacher_records, silver_pool)
        if fr is not None:
            save_fold_result(fr, result)
        return fr

    def _compute_fold(
        self,
        folds: Folds,
        fold: int,
        teacher_records: dict[str, list[Example]],
        silver_pool: dict[str, list[Example]],
    ) -> FoldResult | None:
        from ade_distill.evaluation import score_systems

        fold_dir = self.run_dir / f"fold{fold}"
        test_all = [self.by_id[i] for i in sorted(folds.test_ids(fold))]
        test = self.scored(test_all)
        train_ids = folds.train_ids(fold)
        timings: dict[str, float] = {}
        self._log(f"fold {fold}: {len(test):,} test examples")

        silver, sstats, contamination = self._silver_for_fold(silver_pool, train_ids, test)
        write_examples(fold_dir / "silver.jsonl", silver)
        s_train, s_dev = self._dev_split(silver, fold)
        preds: dict[str, list[Example]] = {}
        for name, recs in teacher_records.items():
            preds[f"teacher:{name}"] = self.teacher_predictions(recs, test)
        if len(teacher_records) > 1:
            voted, _ = vote({n: self.teacher_predictions(r, test) for n, r in teacher_records.items()},
                            min_votes=min(self.cfg.silver.vote_system_min_votes, len(teacher_records)),
                            boundary=self.cfg.silver.boundary)
            vmap = {e.id: e for e in voted}
            preds[VOTE] = [vmap.get(g.id, Example(id=g.id, text=g.text)) for g in test]
        if self.out_of_time():
            return None
        preds[STUDENT], speed, timings[STUDENT] = self._train_and_predict(
            STUDENT, fold_dir / STUDENT, s_train, s_dev, test)
        silver_counts = sstats.as_dict()
        if self.cfg.self_training is not None:
            rounds = self._self_train(fold_dir, s_train, s_dev, test, preds, timings)
            if rounds is None:
                return None
            silver_counts["self_training"] = rounds
        if self.cfg.ensemble.seeds > 1:
            ens = self._ensemble(fold_dir, s_train, s_dev, test, preds[STUDENT], timings)
            if ens is None:
                return None
            preds[member_name(self.train_config.seed)] = preds[STUDENT]
            preds[STUDENT] = ens[0]
            # the ensemble runs every member: its rate is the harmonic combination of theirs
            rates = [speed, *ens[1]]
            speed = 1.0 / sum(1.0 / r for r in rates) if all(r > 0 for r in rates) else 0.0
        if self.cfg.compress is not None:
            if self.out_of_time():
                return None
            compressed = self._compress(fold_dir, s_train + s_dev, test, timings)
            if compressed is None:
                return None
            preds.update(compressed[0])
            silver_counts["compress"] = compressed[1]
        if self.cfg.supervised.enabled:
            if self.out_of_time():
                return None
            gold_train = [self.by_id[i] for i in sorted(train_ids)]
            if not self.cfg.supervised.include_negatives:
                gold_train = self.scored(gold_train)
            g_train, g_dev = self._dev_split(gold_train, fold)
            preds[SUPERVISED], _, timings[SUPERVISED] = self._train_and_predict(
                SUPERVISED, fold_dir / SUPERVISED, g_train, g_dev, test, self.supervised_config)
        sc = self.cfg.scoring
        report = score_systems(test, preds, modes=sc.modes, n_boot=sc.n_boot, seed=sc.seed)
        return FoldResult(fold, preds, test, report.to_dict(), silver_counts, contamination, timings, speed)

    def learning_curve(self, folds: Folds, silver_pool: dict[str, list[Example]]) -> None:
        from ade_distill.evaluation import micro_prf

        lc = self.cfg.learning_curve
        for fold in lc.folds:
            if fold >= len(folds.folds):
                continue
            test = self.scored([self.by_id[i] for i in sorted(folds.test_ids(fold))])
            silver, _, _ = self._silver_for_fold(silver_pool, folds.train_ids(fold), test)
            s_train, s_dev = self._dev_split(silver, fold)
            for frac in lc.fractions:
                if self.out_of_time():
                    return
                done = Stage(self.run_dir / f"fold{fold}" / f"curve_{frac:g}" / "result",
                             self.result_key(folds, "curve", fold, frac))
                if done.done:
                    self.result.curve.append(done.summary)
                    continue
                rng = random.Random(f"{self.cfg.folds.seed}-{fold}-{frac}")
                sub = sorted(rng.sample(range(len(s_train)), max(1, int(len(s_train) * frac))))
                part = [s_train[i] for i in sub]
                preds, _, _ = self._train_and_predict(
                    f"student@{frac:g}", self.run_dir / f"fold{fold}" / f"curve_{frac:g}", part, s_dev, test)
                row = {"fold": fold, "fraction": frac, "silver_examples": len(part)}
                for mode in ("strict", "lenient"):
                    p, r, f1 = micro_prf(test, preds, mode=mode)
                    row[mode] = {"precision": p, "recall": r, "f1": f1}
                done.start()
                done.finish(row)
                self.result.curve.append(row)

    def result_dirs(self) -> list[Path]:
        """Every finished fold-level result folder of this run (``fold*/result``, ``fold*/curve_*/result``)."""
        return sorted(p.parent for p in self.run_dir.glob("fold*/**/result/stage.json"))

    def seed_from_report(self, report_dir: Path) -> int:
        """Copy fold-level results saved in a report folder (``<report>/folds/``) into this run's folder, so
        that a run interrupted on another machine resumes without recomputing them. Results whose key does not
        match the current config are ignored by :meth:`run_fold` as usual. Returns how many were copied."""
        src = report_dir / "folds"
        n = 0
        for marker in sorted(src.glob("fold*/**/result/stage.json")):
            rel = marker.parent.relative_to(src)
            dest = self.run_dir / rel
            if (dest / "stage.json").is_file():
                continue
            shutil.copytree(marker.parent, dest, dirs_exist_ok=True)
            n += 1
        return n

    # -- the whole run ---------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        cfg = self.cfg
        folds = self.make_folds()
        n = min(self.opts.folds or cfg.folds.k, cfg.folds.k)
        bad = [f for f in self.opts.only_folds if not 0 <= f < cfg.folds.k]
        if bad:
            from ade_distill.errors import ConfigError

            raise ConfigError(f"--only-fold {bad[0]} is not a fold of this config (folds 0..{cfg.folds.k - 1})")
        todo = sorted(set(self.opts.only_folds)) if self.opts.only_folds else list(range(n))
        self.result.folds_planned = len(todo)
        scored_all = strip_labels(self.scored(self.gold))
        teacher_records: dict[str, list[Example]] = {}
        for t in cfg.teachers:
            teacher_records[t.name] = self.teacher_labels(t, scored_all, "gold-text")
        silver_pool = teacher_records
        if cfg.silver.source == "unlabeled":
            from ade_distill.data.unlabeled import iter_documents, to_sentences

            assert cfg.silver.unlabeled_path is not None
            sents = []
            for s in to_sentences(iter_documents(cfg.silver.unlabeled_path)):
                sents.append(s)
                if cfg.silver.max_unlabeled_sentences and len(sents) >= cfg.silver.max_unlabeled_sentences:
                    break
            silver_pool = {t.name: self.teacher_labels(t, sents, "unlabeled") for t in cfg.teachers}
        for fold in todo:
            if self.out_of_time():
                self.result.stopped_early = True
                break
            fr = self.run_fold(folds, fold, teacher_records, silver_pool)
            if fr is None:
                self.result.stopped_early = True
                break
            self.result.folds_done.append(fr)
        complete = len(self.result.folds_done) == cfg.folds.k
        if cfg.learning_curve.fractions and complete:  # extra trainings: full runs only, not the --folds 1 demo
            self.learning_curve(folds, silver_pool)
        self.result.seconds = time.time() - self.t0
        return self.result


def machine_description() -> str:
    import os

    try:
        import torch

        dev = f"torch {torch.__version__}, {'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'}"
    except Exception:  # pragma: no cover
        dev = "no torch"
    return f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, Python {platform.python_version()}, {dev}"

