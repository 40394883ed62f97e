"""Command-line options shared by several commands (one definition, one help text): the task, the input format and
the BRAT/BioC label map. One vocabulary of formats (:mod:`ade_distill.data.formats`): ``jsonl`` (``records`` is the
same), ``brat``, ``bioc``; commands that read unlabeled documents also take ``abstracts``, ``medline`` and
``text``. An unknown name is a :class:`~ade_distill.errors.ConfigError` listing the choices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ade_distill.tasks.spec import BUILTIN_TASKS

TaskOpt = Annotated[
    str,
    typer.Option("--task", help=f"A shipped task ({', '.join(BUILTIN_TASKS)}; see `ade-distill tasks`) or the path "
                 "of a task YAML file."),
]

InputFormatOpt = Annotated[
    str | None,
    typer.Option("--input-format", help="Input records format: jsonl (= records), brat (a folder or .ann/.txt "
                 "pair) or bioc (XML/JSON) (default: detected per path)."),
]
DocumentFormatOpt = Annotated[
    str | None,
    typer.Option("--input-format", help="Input format: jsonl (= records: labeled as is), abstracts (JSONL), "
                 "medline (XML, .gz allowed), text, brat or bioc (default: sniffed)."),
]
LabelMapOpt = Annotated[
    Path | None,
    typer.Option("--label-map", help="BRAT/BioC label map YAML (project ↔ file labels, relation roles, "
                 "discontinuous-span policy), or a shipped name such as n2c2_2018; not used for JSONL input."),
]

__all__ = ["DocumentFormatOpt", "InputFormatOpt", "LabelMapOpt", "TaskOpt"]
