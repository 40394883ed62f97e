"""Epoch checkpoints of the training loops (``train.py``'s student training, ``compress.py``'s compression), so a
long run killed mid-way — a session's end, a machine going back — continues after its last finished epoch.

A checkpoint is one ``torch.save`` file beside the output folder (``.NAME.checkpoint.pt``), written atomically
(unique temporary name, fsync, rename) after each epoch. It holds the loop's weights, optimizer and schedule, the
random generators and whatever the loop keeps, plus a *fingerprint* of everything that decides the result (options,
data, tokenizer, initial weights, device type): a checkpoint is resumed only by a run with the same fingerprint,
and a run with another one starts over, with a warning. A checkpoint written by other code is resumed with a
warning (the cache of finished stages treats code the same way). One that cannot be written is skipped with a
warning: the run goes on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = 1


def path_for(out_dir: Path) -> Path:
    """Where the checkpoint of a run writing ``out_dir`` lives (beside it, hidden)."""
    return out_dir.parent / f".{out_dir.name}.checkpoint.pt"


def fingerprint(parts: Sequence[str], lines: Sequence[tuple[str, Iterable[str]]], modules: Sequence[Any]) -> str:
    """SHA-256 over ``parts`` (options, device, tokenizer...), named groups of ``lines`` (serialized records or
    texts) and the current weights of ``modules``."""
    import torch

    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8") + b"\0")
    for name, group in lines:
        h.update(name.encode("utf-8") + b"\0")
        for line in group:
            h.update(line.encode("utf-8") + b"\n")
    for module in modules:
        for name, tensor in module.state_dict().items():
            h.update(name.encode("utf-8") + b"\0")
            h.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def tokenizer_spec(tokenizer: Any) -> str:
    """A fast tokenizer's full definition (vocabulary, normalizer, ...) as a string, for fingerprints."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend.to_str() if backend is not None else repr(tokenizer)


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save(path: Path, state: dict[str, Any], what: str) -> None:
    """Write ``state`` (with the format and the code's source hash added) to ``path`` atomically; a failure
    (a full disk, say) is a warning, never the end of the run."""
    import torch

    from ade_distill.provenance import source_hash
    from ade_distill.records import temp_path

    tmp = temp_path(path)
    try:
        with tmp.open("wb") as fh:
            torch.save({"format": FORMAT, "source": source_hash(), **state}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        log.warning("could not write the %s checkpoint %s (%s); the run continues, but a kill now restarts it from "
                    "the last checkpoint written", what, path, err)


def load(path: Path | None, expected: str, what: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` when it exists, is readable and has the fingerprint ``expected``; else None
    (with a warning naming why, when a file was there)."""
    import torch

    from ade_distill.provenance import source_hash

    if path is None or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a torn or foreign file: start over, say so
        log.warning("ignoring unreadable %s checkpoint %s (%s); starting over", what, path, err)
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("fingerprint") != expected:
        log.warning("ignoring %s checkpoint %s: it was written for other options or data; starting over", what, path)
        return None
    if state.get("source") != source_hash():
        log.warning("%s checkpoint %s was written by other ade-distill code (source %s, now %s); resuming it as it "
                    "is — delete it to start over", what, path, state.get("source"), source_hash())
    return state


__all__ = ["FORMAT", "fingerprint", "load", "path_for", "restore_rng", "rng_state", "save", "tokenizer_spec"]
