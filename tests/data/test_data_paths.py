"""Where the data lives: $ADE_DISTILL_DATA, else ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from ade_distill import paths
from ade_distill.data.corpora import load_corpus
from ade_distill.errors import ConfigError


def test_env_var_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    assert paths.data_dir() == tmp_path


def test_env_var_expands_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "d").mkdir()
    monkeypatch.setenv(paths.ENV_VAR, "~/d")
    assert paths.data_dir() == tmp_path / "d"


def test_env_var_not_a_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match=r"\$ADE_DISTILL_DATA=.*nope' is not a folder"):
        paths.data_dir()
    f = tmp_path / "file"
    f.write_text("x")
    monkeypatch.setenv(paths.ENV_VAR, str(f))
    with pytest.raises(ConfigError, match="is not a folder"):
        paths.data_dir()


def test_fallback_to_shared_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(paths.ENV_VAR, raising=False)
    got = paths.data_dir()
    assert got.parts[-2:] == ("shared", "data") and (got / "ade_corpus_v2").is_dir()
    monkeypatch.setenv(paths.ENV_VAR, "")  # empty counts as unset
    assert paths.data_dir() == got


def test_nothing_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(paths.ENV_VAR, raising=False)
    monkeypatch.setattr(paths, "_candidates", lambda: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ConfigError, match="No data folder found. Set \\$ADE_DISTILL_DATA"):
        paths.data_dir()
    assert paths.data_dir(required=False) == tmp_path / "a"


def test_project_root() -> None:
    assert (paths.project_root() / "ade_distill" / "paths.py").is_file()


def test_load_corpus_names(fixtures_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "ade_corpus_v2").mkdir(parents=True)
    for f in (fixtures_dir / "ade_tiny").iterdir():
        (root / "ade_corpus_v2" / f.name).write_bytes(f.read_bytes())
    assert len(load_corpus("ade", root)) == 9 and len(load_corpus("ade-positive", root)) == 6
    with pytest.raises(ConfigError, match="unknown corpus 'cdr-val'"):
        load_corpus("cdr-val", root)


def test_head_conditioning_stats_counts_heads_with_different_tails() -> None:
    from ade_distill.data.stats import head_conditioning_stats
    from ade_distill.records import Example, Relation, Span

    text = "A and B gave rash and fever."

    def ex(i: str, rels: list[tuple[str, str]]) -> Example:
        spans = (Span(id="T1", label="DRUG", start=0, end=1, text="A"),
                 Span(id="T2", label="DRUG", start=6, end=7, text="B"),
                 Span(id="T3", label="ADE", start=13, end=17, text="rash"),
                 Span(id="T4", label="ADE", start=22, end=27, text="fever"))
        return Example(id=i, text=text, spans=spans, relations=tuple(Relation(head=h, tail=t, label="ADE")
                                                                      for h, t in rels))

    exs = [ex("same", [("T1", "T3"), ("T2", "T3")]),        # two heads, same tails
           ex("differ", [("T1", "T3"), ("T2", "T4")]),      # two heads, different tails
           ex("one", [("T1", "T3"), ("T1", "T4")]),         # one head
           ex("none", [])]
    assert head_conditioning_stats(exs) == {"examples_with_relations": 3, "with_two_or_more_related_heads": 2,
                                            "heads_with_different_tails": 1}
