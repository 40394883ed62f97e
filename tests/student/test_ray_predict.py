"""Sharded prediction (`predict --engine ray`): the Ray engine gives the records of single-process `predict` on the
same inputs, byte for byte; a run killed between shards, or mid-write, resumes without duplicates and never counts
a partial file as finished; a bad shard fails alone."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from ade_distill.errors import ConfigError, DataError
from ade_distill.hashing import file_sha256
from ade_distill.records import Example, read_examples
from ade_distill.student.shards import (
    MANIFEST,
    Manifest,
    collect_results,
    expand_inputs,
    plan_shards,
    prepare_run,
    read_shard,
    run_settings,
    shard_key,
    write_records_atomic,
)

N_PER_SHARD = 6  # MEDLINE citations per XML shard (a few have no abstract)


def _medline_shards(src: Path, dest: Path, n_shards: int) -> list[Path]:
    """Split the first citations of a real MEDLINE file into ``n_shards`` gzipped MEDLINE XML files."""
    raw = gzip.open(src, "rt", encoding="utf-8").read()
    blocks = re.findall(r"(?s)<MedlineCitation\b.*?</MedlineCitation>", raw)[: n_shards * N_PER_SHARD]
    out = []
    for k in range(n_shards):
        p = dest / f"medline_part{k}.xml.gz"
        part = "\n".join(blocks[k * N_PER_SHARD:(k + 1) * N_PER_SHARD])
        with gzip.open(p, "wt", encoding="utf-8") as fh:
            fh.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<MedlineCitationSet>\n{part}\n</MedlineCitationSet>\n')
        out.append(p)
    return out


@pytest.fixture(scope="module")
def shard_inputs(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """Four shards: three of the shared MEDLINE baseline file and one of abstracts JSONL."""
    folder = tmp_path_factory.mktemp("shards_in")
    _medline_shards(data_root / "pubmed_unlabeled" / "medline16n0902.xml.gz", folder, 3)
    lines = (data_root / "pubmed_unlabeled" / "pubmed_abstracts.jsonl").read_text(encoding="utf-8").splitlines()
    (folder / "abstracts_part3.jsonl").write_text("\n".join(lines[:4]) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def single_process(trained_dir: Path, shard_inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each shard predicted by single-process `predict` (one torch thread, as each Ray worker): key → file."""
    import torch

    from ade_distill.student.predict import predict_file

    out = tmp_path_factory.mktemp("single")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        files = {}
        for p in sorted(shard_inputs.iterdir()):
            files[shard_key(p)] = out / f"{shard_key(p)}.jsonl"
            predict_file(trained_dir, p, files[shard_key(p)])
    finally:
        torch.set_num_threads(threads)
    return files


def _outputs(out_dir: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted(out_dir.glob("*.jsonl"))}


def _expected(single_process: dict[str, Path]) -> dict[str, bytes]:
    return {k: p.read_bytes() for k, p in sorted(single_process.items())}


def _check_manifest(out_dir: Path, n: int) -> dict:
    data = json.loads((out_dir / MANIFEST).read_text())
    assert len(data["shards"]) == n
    for key, entry in data["shards"].items():
        f = out_dir / entry["output"]
        assert f.stem == key and file_sha256(f) == entry["sha256"] and f.stat().st_size == entry["bytes"]
        assert entry["records"] == sum(1 for _ in read_examples(f))
        assert entry["finished_at"].endswith("+00:00")
    return data


# -- without Ray -----------------------------------------------------------------------------------------------
def test_inputs_plan_and_names(tmp_path: Path, shard_inputs: Path) -> None:
    assert shard_key("medline16n0902.xml.gz") == "medline16n0902"
    assert shard_key("a/notes.txt") == "notes" and shard_key("x.jsonl") == "x"
    files = expand_inputs(str(shard_inputs / "medline_*.xml.gz"))
    assert [f.name for f in files] == [f"medline_part{k}.xml.gz" for k in range(3)]
    assert len(expand_inputs(shard_inputs)) == 4  # a folder: its files
    with pytest.raises(ConfigError, match="matches no file"):
        expand_inputs(str(tmp_path / "*.xml.gz"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    twins = [tmp_path / "a" / "x.jsonl", tmp_path / "b" / "x.jsonl.gz"]
    with pytest.raises(ConfigError, match="distinct file names"):
        plan_shards(twins, tmp_path / "out")
    with pytest.raises(ConfigError, match="output format"):
        plan_shards(files, tmp_path / "out", "csv")


def test_a_folder_gives_only_its_input_files(tmp_path: Path) -> None:
    """A PubMed baseline folder holds checksums beside the XML; a folder may hold notes: neither is a shard."""
    pubmed = tmp_path / "pubmed"
    pubmed.mkdir()
    for name in ("pubmed24n0001.xml.gz", "pubmed24n0001.xml.gz.md5", "pubmed24n0002.xml.gz",
                 "pubmed24n0002.xml.gz.md5", "README", "notes.md", "abstracts.jsonl", "more.JSONL.gz", "doc.txt",
                 ".hidden.xml"):
        (pubmed / name).write_bytes(b"x")
    assert [f.name for f in expand_inputs(pubmed)] == ["abstracts.jsonl", "doc.txt", "more.JSONL.gz",
                                                       "pubmed24n0001.xml.gz", "pubmed24n0002.xml.gz"]
    # a file or a pattern is taken as given
    assert [f.name for f in expand_inputs(pubmed / "README")] == ["README"]
    assert len(expand_inputs(str(pubmed / "pubmed24n000?.xml.gz*"))) == 4
    sums = tmp_path / "sums"
    sums.mkdir()
    (sums / "a.xml.gz.md5").write_text("x")
    with pytest.raises(ConfigError, match="holds no input file.*a.xml.gz.md5"):
        expand_inputs(sums)


def test_a_brat_folder_is_refused(tmp_path: Path) -> None:
    brat = tmp_path / "brat"
    brat.mkdir()
    for name, text in (("doc1.txt", "Aspirin caused rash."), ("doc1.ann", "T1\tDRUG 0 7\tAspirin\n"),
                       ("annotation.conf", "[entities]\nDRUG\n")):
        (brat / name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="BRAT collection.*single-process"):
        expand_inputs(brat)
    with pytest.raises(ConfigError, match="BRAT collection"):
        prepare_run(brat, tmp_path / "out", {"models": [], "out_format": "jsonl"})


def test_actor_gpus_keeps_cpu_only_models_on_cpu() -> None:
    from ade_distill.student.ray_engine import actor_gpus

    assert actor_gpus(4, None) == 1.0  # torch on a GPU cluster: one GPU per actor
    assert actor_gpus(0, None) == 0.0
    assert actor_gpus(4, 0.5) == 0.5
    # int8 torch (dynamic quantization) and ONNX Runtime have CPU kernels only
    assert actor_gpus(4, None, quantize=True) == 0.0
    assert actor_gpus(4, None, runtime="onnx") == 0.0
    assert actor_gpus(4, 0, quantize=True) == 0.0
    with pytest.raises(ConfigError, match="--quantize.*CPU only.*--gpus-per-worker 0"):
        actor_gpus(4, 1, quantize=True)
    with pytest.raises(ConfigError, match="--runtime onnx runs on CPU only"):
        actor_gpus(4, 1, runtime="onnx")
    with pytest.raises(ConfigError, match="has 1 GPUs"):
        actor_gpus(1, 2)


def test_one_run_per_out_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second run on an --out another run holds fails at once, before Ray starts; the lock goes with the run."""
    from ade_distill.student import ray_engine
    from ade_distill.student.shards import LOCK, exclusive_out_dir

    out = tmp_path / "out"
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w")
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text("Aspirin caused rash.\n", encoding="utf-8")
    monkeypatch.setattr(ray_engine, "require_ray", lambda: object())  # no Ray needed to be refused
    monkeypatch.setattr(ray_engine, "connect", lambda *a, **k: pytest.fail("Ray must not start"))
    with exclusive_out_dir(out) as lock:
        assert lock == out / LOCK
        with pytest.raises(ConfigError, match="another predict --engine ray run"):
            with exclusive_out_dir(out):
                pass
        with pytest.raises(ConfigError, match=r"out is being written by another predict --engine ray run"):
            ray_engine.predict_ray([model], inputs, out, runtime="onnx")
        assert not (out / MANIFEST).exists()
    # released: the lock file (hidden) does not make the folder look foreign to the manifest
    with exclusive_out_dir(out):
        manifest, _, todo = prepare_run(inputs, out, {"models": [], "out_format": "jsonl"})
        assert len(todo) == 1 and manifest.path.is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        with exclusive_out_dir(tmp_path / "file"):
            pass


def test_atomic_write_leaves_nothing_when_killed_mid_shard(tmp_path: Path) -> None:
    """A writer that dies after some records leaves neither the output nor its temporary file."""
    def records():
        yield Example(id="a", text="one")
        raise KeyboardInterrupt  # the worker is stopped mid-shard

    target = tmp_path / "out" / "s.jsonl"
    with pytest.raises(KeyboardInterrupt):
        write_records_atomic(target, records())
    assert list((tmp_path / "out").iterdir()) == []
    info = write_records_atomic(target, [Example(id="a", text="one")])
    assert info["records"] == 1 and info["sha256"] == file_sha256(target)


def test_partial_files_never_count_as_finished(tmp_path: Path, shard_inputs: Path) -> None:
    """What a killed run can leave — a temp file, an output without manifest entry, an entered output changed
    afterwards — is not finished; the temp file is removed by the next run."""
    out = tmp_path / "out"
    settings = {"models": [], "out_format": "jsonl"}
    manifest, shards, todo = prepare_run(shard_inputs, out, settings)
    assert len(todo) == 4
    done = write_records_atomic(shards[0].output, [Example(id="a", text="one"), Example(id="b", text="two")])
    manifest.record({"key": shards[0].key, "input": str(shards[0].input),
                     "input_bytes": shards[0].input.stat().st_size, "output": shards[0].output.name, **done,
                     "finished_at": "x"})
    (out / f".{shards[1].output.name}.123.0123456789ab.tmp").write_text('{"id": "half')  # killed mid-write
    shards[2].output.write_text('{"id": "c", "text": "three"}\n')  # complete file, killed before the manifest
    manifest, _, todo = prepare_run(shard_inputs, out, settings)
    assert [s.key for s in todo] == [s.key for s in shards[1:]]
    assert not list(out.glob(".*.tmp"))
    shards[0].output.write_text(shards[0].output.read_text()[:20])  # an entered output, truncated later
    _, _, todo = prepare_run(shard_inputs, out, settings)
    assert [s.key for s in todo] == [s.key for s in shards]


def test_manifest_refuses_other_settings(tmp_path: Path, trained_dir: Path) -> None:
    Manifest.open(tmp_path / "out", run_settings([trained_dir], split="auto", out_format="jsonl"))
    with pytest.raises(ConfigError, match="other settings.*split"):
        Manifest.open(tmp_path / "out", run_settings([trained_dir], split="always", out_format="jsonl"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="no manifest.json"):
        Manifest.open(tmp_path / "other", {})


def test_bad_shard_fails_alone(tmp_path: Path, trained_dir: Path, shard_inputs: Path,
                               single_process: dict[str, Path], request: pytest.FixtureRequest) -> None:
    """The Ray worker class (called in-process here): a truncated MEDLINE file gives an error row, the other
    shards are entered, and the run ends with a DataError naming the bad shard; a rerun predicts it alone."""
    from ade_distill.student.ray_engine import ShardPredictor

    inputs = tmp_path / "in"
    inputs.mkdir()
    for p in sorted(shard_inputs.glob("medline_*"))[:2]:
        (inputs / p.name).write_bytes(p.read_bytes())
    bad = inputs / "medline_part1.xml.gz"
    bad.write_bytes(gzip.compress(gzip.decompress(bad.read_bytes())[:3000]))
    out = tmp_path / "out"
    settings = run_settings([trained_dir], out_format="jsonl")
    import torch

    threads = torch.get_num_threads()
    worker = ShardPredictor([str(trained_dir)], {}, {"out_format": "jsonl"}, threads=1, device="cpu")
    request.addfinalizer(lambda: torch.set_num_threads(threads))

    def run() -> dict:
        manifest, shards, todo = prepare_run(inputs, out, settings)
        rows = worker({"key": [s.key for s in todo], "input": [str(s.input) for s in todo],
                       "output": [str(s.output) for s in todo]})
        results = [dict(zip(rows, vals, strict=True)) for vals in zip(*rows.values(), strict=True)]
        return collect_results(manifest, shards, todo, results)

    with pytest.raises(DataError, match=r"1 of 2 shards failed \(medline_part1: .*malformed XML"):
        run()
    assert _outputs(out) == {"medline_part0": single_process["medline_part0"].read_bytes()}
    assert not list(out.glob(".*.tmp"))
    bad.write_bytes((shard_inputs / bad.name).read_bytes())  # the input is fixed
    summary = run()
    assert (summary["skipped"], summary["predicted"]) == (1, 1)
    assert _outputs(out) == {k: single_process[k].read_bytes() for k in ("medline_part0", "medline_part1")}


def test_parquet_output_round_trips(tmp_path: Path, single_process: dict[str, Path]) -> None:
    pytest.importorskip("pyarrow")
    records = list(read_examples(single_process["medline_part0"]))
    assert any(e.relations for e in records) or any(e.spans for e in records)
    write_records_atomic(tmp_path / "s.parquet", records, "parquet")
    assert list(read_shard(tmp_path / "s.parquet")) == records


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from ade_distill.student.ray_engine import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'ade-distill\[ray\]'"):
        require_ray()


def test_cli_engine_options(tmp_path: Path, trained_dir: Path) -> None:
    from typer.testing import CliRunner

    from ade_distill.cli import app

    base = ["predict", "--model", str(trained_dir), "--input", str(tmp_path / "x.jsonl"), "--out", str(tmp_path / "o")]
    res = CliRunner().invoke(app, [*base, "--engine", "spark"])
    assert isinstance(res.exception, ConfigError) and "single or ray" in str(res.exception)
    res = CliRunner().invoke(app, [*base, "--workers", "2"])
    assert isinstance(res.exception, ConfigError) and "go with --engine ray" in str(res.exception)


# -- on Ray (a local Ray with 2 CPUs, started and stopped by each run) -------------------------------------------
@pytest.fixture
def no_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray.data")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.mark.slow
@pytest.mark.usefixtures("no_cluster")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")
def test_ray_predict_equals_single_process(tmp_path: Path, trained_dir: Path, shard_inputs: Path,
                                           single_process: dict[str, Path]) -> None:
    from typer.testing import CliRunner

    from ade_distill.cli import app

    out = tmp_path / "out"
    args = ["predict", "--engine", "ray", "--workers", "2", "--model", str(trained_dir),
            "--input", str(shard_inputs / "*"), "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "4 shards predicted, 0 already finished, of 4" in res.output and "with 2 workers" in res.output
    assert _outputs(out) == _expected(single_process)  # same ids, spans, relations, meta and order, per shard
    data = _check_manifest(out, 4)
    assert data["settings"]["models"][0]["path"] == str(trained_dir.resolve())
    res = CliRunner().invoke(app, args)  # all finished: Ray is not even started
    assert res.exit_code == 0 and "0 shards predicted, 4 already finished" in res.output, res.output


@pytest.mark.slow
@pytest.mark.usefixtures("no_cluster")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")
def test_ray_predict_killed_then_resumed(tmp_path: Path, trained_dir: Path, shard_inputs: Path,
                                         single_process: dict[str, Path]) -> None:
    """The driver dies after the first shard is entered (Ray is shut down with shards in flight); the rerun
    skips that shard, ignores what the kill left, and ends with the single-process records, each once."""
    from ade_distill.student.ray_engine import predict_ray

    class Killed(Exception):
        pass

    def kill(entry: dict) -> None:
        raise Killed(entry["key"])

    out = tmp_path / "out"
    with pytest.raises(Killed):
        predict_ray([trained_dir], shard_inputs, out, workers=2, progress=False, on_shard=kill)
    first = json.loads((out / MANIFEST).read_text())["shards"]
    assert len(first) == 1
    # what a kill mid-write leaves: a half temp file; and an output renamed just before the manifest update
    rest = sorted(set(single_process) - set(first))
    (out / f".{rest[0]}.jsonl.999.0123456789ab.tmp").write_bytes(single_process[rest[0]].read_bytes()[:100])
    (out / f"{rest[1]}.jsonl").write_bytes(single_process[rest[1]].read_bytes()[:100])

    summary = predict_ray([trained_dir], shard_inputs, out, workers=2, progress=False)
    assert (summary["skipped"], summary["predicted"], summary["failed"]) == (1, 3, 0)
    assert _outputs(out) == _expected(single_process)
    assert [p.name for p in out.glob(".*")] == [".lock"]  # no temp file left: only the run lock
    _check_manifest(out, 4)
    ids = [e.id for p in sorted(out.glob("*.jsonl")) for e in read_examples(p)]
    assert len(ids) == len(set(ids))  # no duplicate records
