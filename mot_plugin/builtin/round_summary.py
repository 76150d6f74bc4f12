"""Built-in round-end plugin: a `summary.json` per round, for people and tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mot_plugin.hookspecs import hookimpl
from mot_plugin.recipe import Recipe


@hookimpl
def mot_round_end(recipe: Recipe, round: int, student: Path, results: dict[str, dict[str, Any]]) -> None:
    """Write `round-NN/summary.json`: the merged student and every step's result."""
    summary = {"round": round, "student": str(student), "steps": results}
    path = student.parent / "summary.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(path)
