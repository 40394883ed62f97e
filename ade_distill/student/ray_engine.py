"""``ade-distill predict --engine ray``: the shards of a sharded run (:mod:`ade_distill.student.shards`) predicted by
a Ray Data actor pool, on a laptop or a cluster.

    ade-distill predict --engine ray --model runs/student --input 'medline/*.xml.gz' --out preds/ [--workers 4]

The layer is thin on purpose: what a shard is, how its records are made (the same function as single-process
``predict``), how it is written (temp file, fsync, rename) and when it counts as finished (manifest entry + file
hash) all live in :mod:`~ade_distill.student.shards`. Here: a dataset of the unfinished shards, one row each;
``map_batches`` with a callable class (:class:`ShardPredictor`: the model is loaded once per actor, in
``__init__``) over ``ActorPoolStrategy(size=workers)``, one shard per call; the driver enters each finished
shard in the manifest as its row arrives. A shard is the unit of work, so a corrupt input fails its own shard
only (reported at the end; a rerun retries it) and a killed run loses at most the shards in flight.

Where Ray runs:

* no ``RAY_ADDRESS``: a local Ray started for this run (``ray.init(address="local", num_cpus=workers x threads)``)
  and stopped after it;
* ``RAY_ADDRESS`` set (``ray start --head`` on a cluster, then ``RAY_ADDRESS=auto`` or ``host:6379`` or
  ``ray://host:10001``): that cluster. Every node needs ade-distill installed, and the model folders, the inputs
  and ``--out`` at the same path (a shared filesystem);
* Ray already initialised in this process (tests, notebooks): used as it is, never shut down here.

Actors take ``num_gpus=gpus_per_worker`` (default: 1 when the cluster has GPUs and the model can use them — torch
runtime without ``--quantize``, see :func:`actor_gpus`; a fraction such as 0.5 puts two actors on one GPU, so one
parses XML while the other predicts) and ``num_cpus = threads`` (torch threads per actor, default 1).

One run at a time per ``--out``: the run holds ``OUT/.lock`` (:func:`~ade_distill.student.shards.exclusive_out_dir`)
from planning to its last manifest entry; a second run on the same folder fails at once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ade_distill.errors import AdeDistillError, ConfigError
from ade_distill.student.shards import (
    Shard,
    check_out_format,
    collect_results,
    exclusive_out_dir,
    predict_shard,
    prepare_run,
    run_settings,
)

log = logging.getLogger(__name__)

_RESULT_FIELDS = {"key": "", "input": "", "input_bytes": 0, "output": "", "records": 0, "spans": 0, "relations": 0,
                  "sentences": 0, "bytes": 0, "sha256": "", "seconds": 0.0, "finished_at": "", "error": ""}


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or a :class:`ConfigError` naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"--engine ray needs Ray Data ({err}): pip install 'ade-distill[ray]'") from None
    return ray


def connect(workers: int | None, threads: int = 1) -> bool:
    """Initialise Ray unless it already is (see the module docstring); returns whether this call started it
    (then the caller shuts it down)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if address:
        log.info("connecting to the Ray cluster at RAY_ADDRESS=%s", address)
        ray.init(address=address, log_to_driver=True)
    else:
        cpus = workers * threads if workers else (os.cpu_count() or 1)
        log.info("starting a local Ray with %d CPUs", cpus)
        ray.init(address="local", num_cpus=cpus, include_dashboard=False)
    return True


def _prepare(model: Any, device: str, sources: Sequence[str]) -> Any:
    """Put a student's (or each ensemble member's) torch module on ``device``, and name each member by its
    folder as the user gave it (``predicted_by.model``, as single-process ``predict`` writes it; the actor
    loaded it by its absolute path)."""
    members = getattr(model, "members", [model])
    for member, source in zip(members, sources, strict=True):
        if getattr(member, "module", None) is not None:
            member.module.to(device)
        member.source = source
    return model


def actor_gpus(cluster_gpus: float, gpus_per_worker: float | None, *, runtime: str = "torch",
               quantize: bool = False) -> float:
    """The GPUs each actor takes (``num_gpus``; 0 = a CPU actor, whose model stays on the CPU). A model that runs
    on the CPU only — ``--runtime onnx`` (ONNX Runtime's CPU provider), or ``--quantize`` (torch int8 dynamic
    quantization has CPU kernels only) — gets CPU actors even on a GPU cluster. Unset ``gpus_per_worker``: 1 when
    the cluster has a GPU and the model can use it, else 0.

    Raises:
        ConfigError: GPUs asked for a CPU-only model, or more per actor than the cluster has.
    """
    cpu_only = runtime != "torch" or quantize
    if gpus_per_worker is None:
        return 1.0 if cluster_gpus >= 1 and not cpu_only else 0.0
    if gpus_per_worker > 0 and cpu_only:
        why = f"--runtime {runtime} runs" if runtime != "torch" else "--quantize (int8 torch) runs"
        raise ConfigError(f"{why} on CPU only; use --gpus-per-worker 0")
    if gpus_per_worker > 0 and cluster_gpus < gpus_per_worker:
        raise ConfigError(f"--gpus-per-worker {gpus_per_worker}: the Ray cluster has {cluster_gpus:g} GPUs")
    return float(gpus_per_worker)


class ShardPredictor:
    """The Ray Data callable class: loads the extractor once per actor (as ``predict`` builds it:
    :func:`~ade_distill.student.ensemble.load_extractor`), then predicts whole shards, one per row of a batch.
    A shard whose input is bad (:class:`AdeDistillError`) comes back as a row with ``error``; anything else
    (a bug, out of memory) fails the run."""

    def __init__(self, model_dirs: list[str], load: dict[str, Any], predict: dict[str, Any], threads: int,
                 device: str, sources: list[str] | None = None) -> None:
        import torch

        from ade_distill.student.ensemble import load_extractor

        torch.set_num_threads(threads)
        self.model = _prepare(load_extractor(model_dirs, **load), device, sources or model_dirs)
        self.predict = predict

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {k: [] for k in _RESULT_FIELDS}
        for key, inp, outp in zip(batch["key"], batch["input"], batch["output"], strict=True):
            shard = Shard(str(key), Path(str(inp)), Path(str(outp)))
            try:
                row = {**_RESULT_FIELDS, **predict_shard(self.model, shard, **self.predict)}
            except AdeDistillError as err:
                row = {**_RESULT_FIELDS, "key": shard.key, "input": str(shard.input), "error": str(err)}
            for k in _RESULT_FIELDS:
                out[k].append(row[k])
        return out


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A result row with numpy scalars turned into Python values (for the JSON manifest)."""
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def predict_ray(
    model_dirs: Sequence[str | Path],
    inputs: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    workers: int | None = None,
    threads: int | None = None,
    gpus_per_worker: float | None = None,
    out_format: str = "jsonl",
    input_format: str | None = None,
    batch_size: int = 64,
    split: str = "auto",
    chunk: int = 2048,
    quantize: bool = False,
    runtime: str = "torch",
    precision: str = "fp32",
    compile: bool = False,
    min_votes: int | None = None,
    boundary: str = "exact",
    progress: bool = True,
    on_shard: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Predict every input file (files, folders, glob patterns) into ``out_dir``, one output file per input and
    a manifest, on Ray (see the module docstring); finished shards of an earlier run with the same settings are
    skipped. ``on_shard(entry)`` is called as each shard is entered in the manifest. Returns the summary of
    :func:`~ade_distill.student.shards.collect_results` plus ``workers``, ``gpus_per_worker`` and ``seconds``.

    Raises:
        ConfigError: Ray not installed, bad options, no input, a manifest of other settings.
        DataError: some shards failed (the others stay finished), or an output not visible to the driver.
    """
    from ade_distill.student.ensemble import votes_needed
    from ade_distill.student.folder import check_student_folder
    from ade_distill.student.model import check_precision
    from ade_distill.student.predict import SPLIT_MODES

    t0 = time.perf_counter()
    ray = require_ray()
    threads = threads or 1
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if threads < 1 or batch_size < 1 or chunk < 1:
        raise ConfigError("threads, batch size and chunk must be >= 1")
    if split not in SPLIT_MODES:
        raise ConfigError(f"split must be one of {SPLIT_MODES}, not {split!r}")
    if gpus_per_worker is not None and gpus_per_worker < 0:
        raise ConfigError(f"--gpus-per-worker must be >= 0, got {gpus_per_worker}")
    check_out_format(out_format)
    dirs = [str(Path(d).resolve()) for d in model_dirs]
    if not dirs:
        raise ConfigError("give at least one --model folder")
    votes_needed(len(dirs), min_votes, boundary)
    if runtime == "torch":
        for d in dirs:
            check_student_folder(Path(d))
    check_precision(precision, runtime=runtime, quantize=quantize, compile=compile)
    settings = run_settings(dirs, runtime=runtime, quantize=quantize, precision=precision, compile=compile,
                            min_votes=min_votes, boundary=boundary,
                            split=split, input_format=input_format, out_format=out_format, batch_size=batch_size,
                            chunk=chunk)
    with exclusive_out_dir(out_dir):  # one run per --out, held to the last manifest entry
        manifest, shards, todo = prepare_run(inputs, out_dir, settings)
        summary: dict[str, Any]
        if not todo:
            summary = collect_results(manifest, shards, todo, [], on_shard)
            summary.update(workers=0, gpus_per_worker=0.0, seconds=round(time.perf_counter() - t0, 3))
            return summary

        started = connect(workers, threads)
        try:
            resources = ray.cluster_resources()
            gpus = float(resources.get("GPU", 0))
            gpus_per_worker = actor_gpus(gpus, gpus_per_worker, runtime=runtime, quantize=quantize)
            if workers is None:
                per = gpus / gpus_per_worker if gpus_per_worker else float(resources.get("CPU", 1)) / threads
                workers = max(1, int(per))
            n_actors = min(workers, len(todo))
            if n_actors * threads > resources.get("CPU", 0):
                log.warning("%d workers x %d threads need more CPUs than the Ray cluster has now (%g); actors wait for "
                            "resources (an autoscaling cluster adds them)", n_actors, threads, resources.get("CPU", 0))
            log.info("predicting %d of %d shards (%d finished) with %d Ray workers (%g GPUs, %d threads each)",
                     len(todo), len(shards), len(shards) - len(todo), n_actors, gpus_per_worker, threads)
            ray.data.DataContext.get_current().enable_progress_bars = progress
            rows = [{"key": s.key, "input": str(s.input.resolve()), "output": str(s.output.resolve())} for s in todo]
            ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
                ShardPredictor,
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=n_actors, max_tasks_in_flight_per_actor=1),
                fn_constructor_kwargs={
                    "model_dirs": dirs,
                    "load": {"min_votes": min_votes, "boundary": boundary, "quantize": quantize, "runtime": runtime,
                             "precision": precision, "compile": compile},
                    "predict": {"input_format": input_format, "batch_size": batch_size, "split": split,
                                "chunk": chunk, "out_format": out_format},
                    "threads": threads,
                    "device": "cuda" if gpus_per_worker > 0 else "cpu",
                    "sources": [str(Path(d)) for d in model_dirs],
                },
                num_cpus=threads,
                num_gpus=gpus_per_worker or None,
            )
            rows_iter = iter(ds.iter_rows())  # streaming: a row arrives as soon as its shard is written
            try:
                summary = collect_results(manifest, shards, todo, map(_plain, rows_iter), on_shard)
            finally:
                # stop the streaming executor before Ray goes (an interrupted run would leave its thread calling
                # into a Ray that is gone)
                close = getattr(rows_iter, "close", None)
                if close is not None:
                    close()
        finally:
            if started:
                ray.shutdown()
        summary.update(workers=n_actors, gpus_per_worker=gpus_per_worker, seconds=round(time.perf_counter() - t0, 3))
        return summary


__all__ = ["ShardPredictor", "actor_gpus", "connect", "predict_ray", "require_ray"]
