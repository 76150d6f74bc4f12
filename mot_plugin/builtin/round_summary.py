"""Built-in round-end plugin: a `summary.json` per round, for people and tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mot_plugin.atomic import write_json
from mot_plugin.hookspecs import hookimpl
from mot_plugin.recipe import Recipe


@hookimpl
def mot_round_end(recipe: Recipe, round: int, student: Path, results: dict[str, dict[str, Any]]) -> None:
    """Write `round-NN/summary.json`: the merged student and every step's result."""
    summary = {"round": round, "student": str(student), "steps": results}
    write_json(student.parent / "summary.json", summary)
