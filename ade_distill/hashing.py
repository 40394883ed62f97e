"""SHA-256 of a file, read in chunks: the one place files are hashed (stage keys, training-file provenance,
checked downloads)."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """The hex SHA-256 of the file's bytes.

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def path_sha256(path: str | Path) -> str:
    """:func:`file_sha256` of a file; for a folder (a BRAT collection), the SHA-256 of its files' relative
    paths and hashes, in sorted order — any change of a file's name or content changes it.

    Raises:
        OSError: a file cannot be read.
    """
    p = Path(path)
    if not p.is_dir():
        return file_sha256(p)
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        h.update(f"{f.relative_to(p).as_posix()}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


__all__ = ["file_sha256", "path_sha256"]
