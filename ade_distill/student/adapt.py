"""Domain adaptation of the student encoder: continued masked-language-model (MLM) pretraining on unlabeled text.

    ade-distill adapt-encoder --texts ../shared/data/pubmed_unlabeled/pubmed_abstracts.jsonl --out runs/minilm-pubmed

The encoder (``minilm``, ``mpnet``, a hub name or a folder) is loaded with an MLM head
(``AutoModelForMaskedLM``; sentence-embedding checkpoints such as all-MiniLM-L6-v2 ship no MLM head, so a new
one is initialised and learned along the way), each document is cut into blocks of ``max_length`` sub-word
tokens (never across documents), and 15% of the sub-word tokens are masked by transformers'
``DataCollatorForLanguageModeling`` (BERT's 80/10/10 scheme). A held-out share of the blocks (drawn by block, so
blocks of one document can fall on both sides: a measure of fit, not of generalisation to new documents) gives
the MLM loss before and after. The folder written is a normal encoder
folder: pass it as ``--encoder`` / ``student.encoder``.

The loop is written out rather than run by transformers' ``Trainer``: the loss runs the prediction head on the
masked positions only (:func:`masked_lm_loss`, the costliest product of a small encoder saved), batches are
length-grouped with the seed, and adapted encoders are cached and committed by key, so the exact order of seeded
draws and steps must stay as it is (``Trainer`` brings its own sampler and RNG handling).

Protocol: text that is also evaluation text must not be used (the reproduction removes every document that shares
a PubMed ID or contains a sentence of the gold corpus before calling :func:`adapt_encoder`).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ade_distill.errors import ConfigError

log = logging.getLogger(__name__)


class AdaptConfig(BaseModel):
    """Options of continued MLM pretraining (invalid values raise pydantic's ValidationError naming the field)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    epochs: int = Field(default=1, ge=1, le=100)
    lr: float = Field(default=5e-5, gt=0.0, lt=1.0)
    batch_size: int = Field(default=32, ge=1, le=4096)
    max_length: int = Field(default=128, ge=16, le=4096, description="sub-word tokens per block, [CLS]/[SEP] included")
    min_block: int = Field(default=16, ge=1, description="a document's last, shorter block is kept from this length")
    mlm_probability: float = Field(default=0.15, gt=0.0, lt=1.0)
    heldout_fraction: float = Field(default=0.05, ge=0.0, lt=0.5, description="blocks kept out to measure MLM loss")
    max_documents: int | None = Field(default=None, ge=1)
    warmup_ratio: float = Field(default=0.06, ge=0.0, le=1.0)
    weight_decay: float = Field(default=0.01, ge=0.0, lt=1.0)
    seed: int = 13
    threads: int | None = Field(default=None, ge=1, le=512)


def blocks_of(ids: Sequence[int], size: int, min_block: int) -> list[list[int]]:
    """Cut one document's token ids (no special tokens) into consecutive blocks of ``size``; a last block shorter
    than ``min_block`` is dropped (pure)."""
    out = [list(ids[i:i + size]) for i in range(0, len(ids), size)]
    return [b for b in out if len(b) == size or len(b) >= min_block]


def make_blocks(tokenizer: Any, texts: Sequence[str], cfg: AdaptConfig) -> list[list[int]]:
    """Token-id blocks (with the tokenizer's special tokens) of every text, in text order."""
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls is None or sep is None:
        raise ConfigError("adapt-encoder needs a tokenizer with [CLS]/[SEP] (or <s>/</s>) tokens")
    inner = cfg.max_length - 2
    blocks: list[list[int]] = []
    for i in range(0, len(texts), 256):
        enc = tokenizer(list(texts[i:i + 256]), add_special_tokens=False, truncation=False,
                        verbose=False)["input_ids"]  # long documents are cut into blocks below
        for ids in enc:
            blocks += [[cls, *b, sep] for b in blocks_of(ids, inner, cfg.min_block)]
    return blocks


def masked_lm_loss(model: Any, batch: dict[str, Any]) -> Any:
    """MLM cross-entropy computed on the masked positions only: the encoder runs on the whole batch, the
    prediction head (and its vocabulary-size projection, the costliest matrix product of a small encoder) only
    on the ~15% of positions that carry a label. Equal to ``model(**batch).loss``."""
    import torch

    heads = [m for _, m in model.named_children() if m is not model.base_model]
    if len(heads) != 1:  # an unusual MLM class: let it compute the loss itself
        return model(**batch).loss
    labels = batch["labels"]
    hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"))[0]
    where = labels != -100
    logits = heads[0](hidden[where])
    return torch.nn.functional.cross_entropy(logits, labels[where])


def _mlm_loss(model: Any, collator: Any, blocks: Sequence[list[int]], batch_size: int) -> float | None:
    """Mean MLM loss per masked token over ``blocks``. The masks come from the collator's own seeded generator,
    so a run is reproducible, but the "before" and "after" measurements draw different masks of the same blocks
    (thousands of masked tokens each, so the difference of masks adds little to the comparison)."""
    import torch

    if not blocks:
        return None
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(blocks), batch_size):
            batch = _to(collator([{"input_ids": b} for b in blocks[i:i + batch_size]]), model.device)
            k = int((batch["labels"] != -100).sum())
            total += float(masked_lm_loss(model, batch)) * k
            n += k
    model.train()
    return total / n if n else None


def _to(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: v.to(device) for k, v in batch.items()}


def adapt_encoder(encoder: str, texts: Sequence[str], out: str | Path, cfg: AdaptConfig | None = None,
                  *, progress: bool = True) -> dict[str, Any]:
    """Continue MLM pretraining of ``encoder`` on ``texts`` and save the adapted encoder and tokenizer to ``out``
    (written to a temporary folder and renamed, so ``out`` appears only when complete). Returns the summary that
    is also written to ``out/adapt.json``.

    The steps: load the encoder with a masked-LM head (seeded), cut the texts into blocks and hold some out,
    measure the held-out MLM loss, train (:func:`_train_mlm`), measure again, save.

    Raises:
        ConfigError: no usable text, or an encoder that cannot be loaded with an MLM head.
    """
    import torch
    from transformers import DataCollatorForLanguageModeling

    from ade_distill.student.encoders import resolve_encoder

    cfg = cfg or AdaptConfig()
    out = Path(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    texts = [t for t in texts if t and t.strip()][: cfg.max_documents]
    if not texts:
        raise ConfigError("adapt-encoder: no text to train on")
    path = resolve_encoder(encoder)
    tokenizer, model = _load_masked_lm(encoder, path, cfg)
    train, held = _split_blocks(make_blocks(tokenizer, texts, cfg), cfg)
    if not train:
        raise ConfigError(f"adapt-encoder: {len(texts)} texts gave no training block of ≥{cfg.min_block} tokens")
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=cfg.mlm_probability,
                                               seed=cfg.seed)
    loss_before = _mlm_loss(model, collator, held, cfg.batch_size)
    t0 = time.time()
    total, curve = _train_mlm(model, collator, train, cfg, progress=progress)
    loss_after = _mlm_loss(model, collator, held, cfg.batch_size)
    summary: dict[str, Any] = {
        "base_encoder": encoder, "resolved": path, "config": cfg.model_dump(mode="json"),
        "documents": len(texts), "blocks_train": len(train), "blocks_heldout": len(held),
        "tokens_train": sum(len(b) for b in train), "steps": total, "seconds": round(time.time() - t0, 1),
        "heldout_mlm_loss_before": loss_before, "heldout_mlm_loss_after": loss_after, "curve": curve,
        "note": "loss_before uses a freshly initialised MLM head when the checkpoint ships none",
    }
    _save_adapted(model, tokenizer, summary, out)
    return summary


def _load_masked_lm(encoder: str, path: str, cfg: AdaptConfig) -> tuple[Any, Any]:
    """Tokenizer and masked-LM model of the resolved encoder ``path`` (on the GPU when there is one). A missing
    masked-LM head is initialised afresh (logged at info level), missing encoder weights are warned about.

    Raises:
        ConfigError: the encoder cannot be loaded with a masked-LM head, or has fewer positions than
            ``cfg.max_length``.
    """
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from ade_distill.student.model import MLM_HEAD_PREFIXES, _quiet_transformers, from_pretrained_quietly

    _quiet_transformers()
    # Seeded before loading: a checkpoint without a masked-LM head gets a freshly initialised one, and that draw
    # must not depend on what the process did before (the same key must give the same encoder everywhere).
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model, info = from_pretrained_quietly(AutoModelForMaskedLM, path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot load encoder {encoder!r} with a masked-LM head: {err}") from None
    missing = sorted(info.get("missing_keys", ()))
    fresh_head = [k for k in missing if k.startswith(MLM_HEAD_PREFIXES)]
    if fresh_head:
        log.info("encoder %s ships no masked-LM head: %d head weight(s) newly initialised", encoder, len(fresh_head))
    if len(missing) > len(fresh_head):
        log.warning("encoder %s: %d encoder weight(s) missing from the checkpoint, newly initialised (%s)", encoder,
                    len(missing) - len(fresh_head), ", ".join(k for k in missing if k not in fresh_head)[:300])
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and cfg.max_length > limit:
        raise ConfigError(f"adapt-encoder: max_length {cfg.max_length} exceeds the {limit} positions of {encoder!r}")
    if torch.cuda.is_available():
        model.to("cuda")
    return tokenizer, model


def _split_blocks(blocks: Sequence[list[int]], cfg: AdaptConfig) -> tuple[list[list[int]], list[list[int]]]:
    """(training blocks, held-out blocks): a seeded ``heldout_fraction`` of the blocks, at least one when there
    are two or more."""
    order = list(range(len(blocks)))
    random.Random(cfg.seed).shuffle(order)
    n_held = int(len(blocks) * cfg.heldout_fraction)
    if cfg.heldout_fraction > 0 and n_held == 0 and len(blocks) > 1:
        n_held = 1  # a tiny corpus still gets a (rough) held-out loss
    held = [blocks[i] for i in order[:n_held]]
    train = [blocks[i] for i in order[n_held:]]
    return train, held


def _train_mlm(model: Any, collator: Any, train: Sequence[list[int]], cfg: AdaptConfig,
               *, progress: bool) -> tuple[int, list[dict[str, float]]]:
    """Masked-LM training on ``train`` (AdamW, no weight decay on biases and norms, linear warm-up/decay,
    gradients clipped at 1.0), in batches of similar length drawn afresh each epoch. Returns the number of steps
    and the loss curve (the mean training loss every 50 steps and at the end)."""
    import torch
    from rich.progress import Progress
    from transformers import get_linear_schedule_with_warmup

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    params = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    sched = get_linear_schedule_with_warmup(opt, int(total * cfg.warmup_ratio), total)
    rng = random.Random(cfg.seed)
    curve: list[dict[str, float]] = []
    t0 = time.time()
    model.train()
    with Progress(disable=not progress, transient=True) as bar:
        job = bar.add_task("MLM adaptation", total=total)
        step = 0
        for epoch in range(cfg.epochs):
            running, seen = 0.0, 0
            for b in _length_grouped(train, cfg.batch_size, rng):
                batch = _to(collator([{"input_ids": train[i]} for i in b]), model.device)
                loss = masked_lm_loss(model, batch)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                running += float(loss.detach())
                seen += 1
                step += 1
                bar.advance(job)
                if step % max(1, total // 20) == 0 or step == total:  # every 5% (shown when not a terminal)
                    log.info("MLM step %d/%d (%d%%): loss %.4f, %.0fs", step, total, 100 * step // total,
                             running / seen, time.time() - t0)
                if step % 50 == 0 or step == total:
                    curve.append({"step": step, "epoch": epoch, "train_loss": round(running / seen, 4)})
                    running, seen = 0.0, 0
            log.info("MLM epoch %d/%d done in %.0fs", epoch + 1, cfg.epochs, time.time() - t0)
    return total, curve


def _length_grouped(blocks: Sequence[list[int]], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Block indices in batches: sorted by length (ties broken at random), cut into batches, batches shuffled —
    little padding, random order."""
    idx = sorted(range(len(blocks)), key=lambda i: (len(blocks[i]), rng.random()))
    batches = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    rng.shuffle(batches)
    return batches


def _save_adapted(model: Any, tokenizer: Any, summary: dict[str, Any], out: Path) -> None:
    """Model, tokenizer and ``adapt.json`` into a temporary sibling folder, renamed to ``out`` when complete."""
    import shutil

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "adapt.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
