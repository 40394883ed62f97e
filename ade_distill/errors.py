"""One exception tree, split by who has to act.

* :class:`ConfigError` — the user's options or config file are wrong.
* :class:`DataError` — an input file is malformed; the message names file, line and record.
* :class:`BackendError` — a teacher endpoint failed in a way retries cannot fix (auth, bad model name).
"""

from __future__ import annotations

from pathlib import Path


class AdeDistillError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(AdeDistillError):
    """A configuration value is invalid; the message says which field, what was found and what is allowed."""


class DataError(AdeDistillError):
    """An input record is invalid.

    The message always starts with ``FILE:LINE`` (when known) and the record id (when known), so that a
    user can open the file at the offending line.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        record_id: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.record_id = record_id
        self.reason = message
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
        if record_id is not None:
            where = f"{where} (record {record_id!r})" if where else f"record {record_id!r}"
        super().__init__(f"{where}: {message}" if where else message)


class BackendError(AdeDistillError):
    """A teacher backend failed permanently (authentication, unknown model, bad endpoint)."""
