"""On-disk response cache (SQLite, WAL): the source of truth for finished teacher calls.

The key is the sha256 of a canonical JSON of everything that changes the answer: backend kind, model, the
endpoint's identity (``Backend.endpoint``: ``scheme://host:port/path`` of a server, never credentials; for
``hf:`` the content of the weight folder), generation parameters, output format, template version and the
rendered messages. Two servers serving the same model name on one host, or a model retrained in place, never
share answers. The value is the raw :class:`TeacherResponse` — so a parser or grounding fix needs no new
calls. Only successful responses are stored; failures are retried on the next run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from ade_distill.teacher.backends.base import TeacherResponse

__all__ = ["ResponseCache", "cache_key"]


def cache_key(
    *, kind: str, model: str, endpoint: str | None, params: dict[str, Any], response_format: str,
    template_version: str | None, messages: list[dict[str, str]],
) -> str:
    """sha256 of a canonical JSON of the arguments (see the module docstring)."""
    blob = json.dumps(
        {"kind": kind, "model": model, "endpoint": endpoint, "params": params, "format": response_format,
         "template": template_version, "messages": messages},
        sort_keys=True, ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """A key → response store. Safe against a process killed at any moment (each put is one transaction)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, kind TEXT, model TEXT, "
            "response TEXT NOT NULL, created REAL NOT NULL)"
        )

    def get(self, key: str) -> TeacherResponse | None:
        row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else TeacherResponse.from_dict(json.loads(row[0]))

    def __contains__(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def put(self, key: str, response: TeacherResponse, *, kind: str = "", model: str = "") -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO responses (key, kind, model, response, created) VALUES (?, ?, ?, ?, ?)",
            (key, kind, model, json.dumps(response.to_dict(), ensure_ascii=False), time.time()),
        )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
