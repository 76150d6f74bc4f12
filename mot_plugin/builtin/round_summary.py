"""Built-in round-end plugin: a `summary.json` per round, for people and tools."""

from __future__ import annotations

from pathlib import Path

from mot_plugin.atomic import write_json
from mot_plugin.hookspecs import hookimpl
from mot_plugin.recipe import Recipe
from mot_plugin.results import StepResult


@hookimpl
def mot_round_end(recipe: Recipe, round: int, student: Path, results: dict[str, StepResult]) -> None:
    """Write `round-NN/summary.json`: the merged student and every step's result."""
    summary = {"round": round, "student": str(student),
               "steps": {step: result.model_dump(mode="json") for step, result in results.items()}}
    write_json(student.parent / "summary.json", summary)
