"""CLI commands of the student stage (registered by ade_distill.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app (none yet)."""
