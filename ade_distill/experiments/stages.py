"""Stage bookkeeping for resumable experiments.

A stage writes its outputs into its own folder, then — last — ``stage.json`` holding the stage key (a hash of
everything that determines its output: config slice and input-file hashes) and a summary. A rerun whose key
matches reuses the stage; a changed key (new config, new input) reruns it. A stage killed half-way has no
``stage.json`` and is simply redone.

``stage.json`` also records the code that made the stage (:func:`ade_distill.provenance.software_provenance`).
Keys ignore code by design, so a stage made by other code (another source of the package, another torch or
transformers, ...) is still reused, but named in a warning, once per distinct difference.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ade_distill.hashing import file_sha256

log = logging.getLogger(__name__)
_WARNED: set[tuple[str, ...]] = set()


def file_hash(path: str | Path) -> str:
    """Short content hash of a file (the first 16 hex digits of its SHA-256), for stage keys."""
    return file_sha256(path)[:16]


def make_key(*parts: Any) -> str:
    """Stable short hash of JSON-serializable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def drop_added_defaults(dump: dict[str, Any], added: dict[str, Any]) -> dict[str, Any]:
    """``dump`` without the options added after a cache format was fixed, where they hold their default.

    ``added`` maps dotted field paths to their defaults (``{"silver.boundary": "exact"}``). Keys then stay
    the same when a new option is introduced, so finished stages (and committed fold results) of configs that
    do not use it are still reused; setting the option changes the key as it must.
    """
    out = json.loads(json.dumps(dump, default=str))
    for path, default in added.items():
        *parents, leaf = path.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict) and leaf in node and node[leaf] == json.loads(json.dumps(default, default=str)):
            del node[leaf]
    return out


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class Stage:
    """``with Stage(folder, key) as st: if not st.done: ...; st.finish(summary)``."""

    def __init__(self, folder: str | Path, key: str) -> None:
        self.folder = Path(folder)
        self.key = key
        self.marker = self.folder / "stage.json"
        self.started = time.time()

    @property
    def done(self) -> bool:
        if not self.marker.is_file():
            return False
        try:
            marker = json.loads(self.marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        if marker.get("key") != self.key:
            return False
        self._check_code(marker.get("software"))
        return True

    def _check_code(self, recorded: dict[str, Any] | None) -> None:
        """Warn (once per distinct difference in this process) when the stage was made by other code."""
        from ade_distill.provenance import differences

        diff = differences(recorded)
        if not diff:
            return
        log.info("stage %s was made by other code: %s", self.folder, "; ".join(diff))
        if tuple(diff) not in _WARNED:
            _WARNED.add(tuple(diff))
            log.warning("reusing cached stage %s (and any other made by the same code) made by other code: %s. "
                        "Stage keys ignore code, so it is reused as it is; delete it to recompute",
                        self.folder, "; ".join(diff))

    @property
    def summary(self) -> dict[str, Any]:
        return dict(json.loads(self.marker.read_text(encoding="utf-8")).get("summary", {}))

    def start(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.marker.unlink(missing_ok=True)
        self.started = time.time()
        return self.folder

    def finish(self, summary: dict[str, Any] | None = None, earlier_seconds: float = 0.0) -> None:
        """Mark the stage done; ``earlier_seconds``: time of interrupted attempts it resumed from."""
        from ade_distill.provenance import software_provenance

        _write_json_atomic(
            self.marker,
            {"key": self.key, "seconds": round(time.time() - self.started + earlier_seconds, 2),
             "summary": summary or {},
             "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "software": software_provenance()},
        )

    @property
    def seconds(self) -> float:
        try:
            return float(json.loads(self.marker.read_text(encoding="utf-8")).get("seconds", 0.0))
        except (OSError, ValueError):
            return 0.0
