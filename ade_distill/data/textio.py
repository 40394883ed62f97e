"""Line-by-line reading of UTF-8 text files with errors that name the file and line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ade_distill.errors import DataError


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` for every line (blank ones included), newline stripped; streams.

    Raises:
        DataError: the file is missing, or a line is not valid UTF-8 (file, line and byte named).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError("file not found", path=p)
    with p.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                yield lineno, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DataError(f"invalid UTF-8 at byte {err.start}", path=p, line=lineno) from None
