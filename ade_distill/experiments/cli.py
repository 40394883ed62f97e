"""`ade-distill reproduce CONFIG.yaml` — the main job (registered by ade_distill.cli)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer


def _final_table(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    modes = res["modes"]
    n = len(res["folds_done"])
    table = Table(title=f"{res['config_name']}: relation F1 % [95% CI], {n} fold(s), {res['n_scored']:,} test examples")
    table.add_column("system", no_wrap=True)
    for m in modes:
        table.add_column(m, justify="right", no_wrap=True)
    for s in res["systems"]:
        cells = []
        for m in modes:
            r = res["pooled"]["results"][s][m]["relation"]["micro"]
            cells.append(f"{100 * r['f1']:.1f} [{100 * r['f1_ci_low']:.1f}, {100 * r['f1_ci_high']:.1f}]")
        table.add_row(s, *cells)
    console = Console()
    if not console.is_terminal:  # piped or logged: do not squeeze the table into 80 columns
        console = Console(width=max(140, console.width))
    console.print(table)


def reproduce(
    config: Annotated[Path, typer.Argument(help="Reproduction config (configs/*.yaml).")],
    folds: Annotated[int | None, typer.Option("--folds", help="Run only the first K folds (default: all).")] = None,
    only_fold: Annotated[
        list[int] | None,
        typer.Option("--only-fold", help="Run only this fold (repeatable), e.g. a dev fold used to choose methods."),
    ] = None,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", help="Start no new stage after M minutes; rerun to resume.")
    ] = None,
    report_dir: Annotated[
        Path | None, typer.Option("--report-dir", help="Where to write the report (default: reports/<name>).")
    ] = None,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", help="Stage cache (default: runs/).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
    reuse_reported_folds: Annotated[
        bool,
        typer.Option("--reuse-reported-folds",
                     help="Resume from the fold results kept in the report folder (e.g. a run begun on another machine)."),
    ] = False,
    all_sentences: Annotated[
        bool,
        typer.Option("--all-sentences",
                     help="Also score the students on all held-out sentences (the ADE-NEG ones too), into "
                     "<report>/all_sentences/; the teachers have no recording there and are left out."),
    ] = False,
) -> None:
    """Run the paper's protocol from one config: folds → teacher → silver → student → scores → report.

    Every stage is cached under runs/<name>/; rerunning the same command reuses finished stages."""
    from ade_distill.experiments.config import load_config
    from ade_distill.experiments.reproduce import Reproduction, RunOptions
    from ade_distill.experiments.results import build_results, write_report

    if folds is not None and only_fold:
        from ade_distill.errors import ConfigError

        raise ConfigError("--folds and --only-fold exclude each other: give one")
    overrides = {}
    if runs_dir is not None:
        overrides["runs_dir"] = str(runs_dir)
    cfg = load_config(config, overrides)
    parts = ["ade-distill", "reproduce", str(config)]
    if folds is not None:
        parts += ["--folds", str(folds)]
    for f in sorted(set(only_fold or [])):
        parts += ["--only-fold", str(f)]
    if max_minutes is not None:
        parts += ["--max-minutes", f"{max_minutes:g}"]
    command = " ".join(shlex.quote(p) for p in parts)
    opts = RunOptions(folds=folds, only_folds=tuple(only_fold or ()), max_minutes=max_minutes, progress=not quiet,
                      command=command)
    rep = Reproduction(cfg, opts)
    full_report = report_dir or Path(cfg.report_dir) / cfg.name
    if reuse_reported_folds:
        typer.echo(f"reusing {rep.seed_from_report(full_report)} fold result(s) from {full_report}/folds", err=True)
    run = rep.run()
    if not run.folds_done:
        typer.echo("no fold finished within the time limit; rerun to resume", err=True)
        raise typer.Exit(3)
    res, pooled, gold = build_results(rep, run, command)
    complete = len(run.folds_done) == cfg.folds.k
    # A partial run (the demo's --folds 1, or --max-minutes) never overwrites the report of a full run.
    out = full_report if (complete or report_dir is not None) else rep.run_dir / "report-partial"
    analysis_file = full_report / "analysis.md"
    analysis = analysis_file.read_text(encoding="utf-8") if analysis_file.is_file() and complete else ""
    dirs = [(d, d.relative_to(rep.run_dir)) for d in rep.result_dirs()]
    write_report(res, pooled, out, analysis, dirs, gold=gold)
    _final_table(res)
    typer.echo(f"report: {out}/README.md")
    if all_sentences:
        from ade_distill.experiments.all_sentences import score_all_sentences

        done = [f.fold for f in run.folds_done]
        allres = score_all_sentences(rep, done, out / "all_sentences", command + " --all-sentences")
        typer.echo(f"all held-out sentences ({allres['n_scored']:,}): {out}/all_sentences/README.md")
    if run.stopped_early:
        typer.echo(f"stopped early after {len(run.folds_done)} fold(s) (--max-minutes); rerun to resume", err=True)


def ablation(
    spec: Annotated[Path, typer.Argument(help="Ablation spec (configs/ablations/beat_the_teacher.yaml).")],
    out: Annotated[Path | None, typer.Option("--out", help="Report folder (default: reports/<spec name>).")] = None,
) -> None:
    """Lever table on the spec's dev fold and the final comparison on the other folds, from finished fold results
    of the listed reproduce configs (run those first; missing ones are shown as pending)."""
    from ade_distill.experiments.ablation import build, load_spec, write

    sp = load_spec(spec)
    res = build(sp)
    readme = write(res, out or Path("reports") / sp.name, str(spec))
    done = sum(r["status"] == "done" for r in res["rows"])
    typer.echo(f"{done}/{len(res['rows'])} lever(s) done; report: {readme}")


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce)
    app.command("ablation")(ablation)
