"""One labeling job per output file: an exclusive, non-blocking lock on ``OUT.lock``.

``fcntl.flock`` rather than the ``filelock`` package: the kernel releases the lock when the process dies in any
way (SIGKILL included), so a killed job never leaves a stale lock behind its resume, and there is no fallback to
a lock file whose mere existence counts as held. The lock is on a companion file, not on ``OUT`` itself, because
``OUT`` is replaced by an atomic rename when a resume rewrites it (the lock would stay on the old inode). The
companion file is left in place: deleting it would let a second job lock a new file while the first still holds
the old one.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ade_distill.errors import ConfigError

__all__ = ["exclusive_output", "lock_path"]


def lock_path(out: Path) -> Path:
    """``OUT.lock`` beside ``OUT``."""
    return out.with_name(out.name + ".lock")


@contextmanager
def exclusive_output(out: Path, *, lock: Path | None = None, command: str = "label") -> Iterator[Path]:
    """Hold the lock of ``out`` for the ``with`` block: on ``lock`` (default :func:`lock_path`; an output folder
    can lock a file inside itself). ``command`` names the kind of run in the error.

    Raises:
        ConfigError: another process holds it (a second ``label`` run on the same ``--out``).
    """
    lock = lock_path(out) if lock is None else lock
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{out} is being written by another {command} run (lock {lock} is held); wait for it "
                              "to finish, or choose another --out") from None
        yield lock
    finally:
        os.close(fd)  # closing the descriptor releases the lock
