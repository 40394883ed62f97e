"""Model card (``README.md``) written automatically into every student folder: what the model is, what it was
trained on (files, hashes, provenance of silver labels), how it was configured and how it scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ade_distill.student.config import StudentConfig
    from ade_distill.tasks.spec import TaskSpec


def _fmt(obj: Any) -> str:
    return "```json\n" + json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n```"


def render_model_card(task: TaskSpec, config: StudentConfig, extra: dict[str, Any] | None = None) -> str:
    from ade_distill.provenance import describe

    rel = task.primary
    prov = config.provenance
    lines = [
        "---",
        "library_name: ade-distill",
        "tags: [biomedical, relation-extraction, token-classification, ade-distill]",
        f"base_model: {config.encoder}",
        "---",
        "",
        f"# ade-distill student: {task.name} ({rel.head} → {rel.tail})",
        "",
        f"{task.description.strip()}",
        "",
        "## Model",
        "",
        f"- Architecture: `{config.architecture}`"
        + (
            " — stage 1 tags head mentions (BIO on first sub-word pieces); stage 2 tags each head mention's tails "
            + ("from token states concatenated with the mean-pooled mention vector (Gu et al. 2023)."
               if config.tail_head == "linear" else
               "with an interaction layer over [token state; mean-pooled mention vector; their product] (an "
               "option beyond Gu et al. 2023).")
            if config.architecture == "drug_conditioned"
            else " — classifier over (head entity, tail entity) pairs of the entity mentions given with the input "
            "(gold entities): mention markers, log-sum-exp over each entity's mentions, adaptive threshold (ATLOP)"
            + ("; the classifier also reads each pair's structure features (sentence distance, co-occurrences, "
               "first-sentence mentions, mention frequency)." if config.pair_structure else ".")
            if config.architecture == "pair_classifier"
            else " — joint BIO tagger for both entity types + pairwise relation classifier (ablation)."
        ),
        f"- Encoder: `{config.encoder}`; max length {config.max_length} sub-word tokens (longer texts are "
        + ("encoded in chunks of that length, in training and prediction)." if config.architecture == "pair_classifier"
           else "cut into windows of whole sentences, in training and prediction)."
           if config.window_long_texts else "split into sentences at prediction time)."),
        f"- Decoding thresholds: head {config.head_threshold}, tail {config.tail_threshold}, relation "
        f"{config.relation_threshold}.",
        f"- Relation label: `{rel.label}` — {rel.definition}",
        "",
        "## Usage",
        "",
        "```python",
        "from ade_distill.student import StudentExtractor",
        "model = StudentExtractor.from_pretrained('THIS_FOLDER')",
        "preds = model.predict(examples)  # list[ade_distill.records.Example]",
        "```",
        "",
        "or `ade-distill predict --model THIS_FOLDER --input FILE --out preds.jsonl`, or in spaCy: "
        "`nlp.add_pipe('ade_distill', config={'model': 'THIS_FOLDER'})`.",
        "",
        "## Training data and provenance",
        "",
        *([f"Made by: {describe(prov['software'])}.", ""] if prov.get("software") else []),
        _fmt(prov) if prov else "Not recorded (model saved outside `train_student`).",
        "",
        "## Metrics",
        "",
        _fmt(config.metrics) if config.metrics else "None recorded.",
        "",
    ]
    if extra:
        lines += ["## Other", "", _fmt(extra), ""]
    lines += [
        "## Limitations",
        "",
        "- Sentence-level: relations across sentences are not predicted.",
        "- Trained on the data above only; silver labels inherit the teacher's errors.",
        "- Research software, not a medical device.",
        "",
    ]
    return "\n".join(lines)


def write_model_card(folder: str | Path, task: TaskSpec, config: StudentConfig, extra: dict[str, Any] | None = None) -> Path:
    p = Path(folder) / "README.md"
    p.write_text(render_model_card(task, config, extra), encoding="utf-8")
    return p
