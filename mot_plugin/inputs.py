"""The inputs a recipe names (student, tokenizer, adapter, teachers' data, evaluation problems), local
or on the hub, and whether each is here: what `mot plan --preview` marks missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mot_plugin.recipe import Recipe

MODEL_KEYS = ("base_model", "tokenizer_config", "lora_model_dir")
"""The shared Axolotl keys that name an input."""


@dataclass(frozen=True)
class Input:
    key: str
    """Where the recipe names it (`base_model`, `mot.teachers.0.datasets.0.path`, ...)."""
    value: str
    local: bool
    """A local path (absolute after loading); otherwise a hub id."""

    @property
    def present(self) -> bool | None:
        """Whether a local input exists; None for a hub id (not checked: no network)."""
        return Path(self.value).exists() if self.local else None


def input_values(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, value) of every input named in recipe data (a loaded recipe's `to_dict()`, or a recipe
    file's YAML as written), in recipe order; values that are not strings are skipped."""
    found = [(key, data.get(key)) for key in MODEL_KEYS]
    mot = data.get("mot") if isinstance(data.get("mot"), dict) else {}
    for i, teacher in enumerate(mot.get("teachers") or []):
        entries = teacher.get("datasets") if isinstance(teacher, dict) else None
        for j, entry in enumerate(entries or []):
            found.append((f"mot.teachers.{i}.datasets.{j}.path", entry.get("path") if isinstance(entry, dict) else None))
    if isinstance(mot.get("eval"), dict):
        found += [("mot.eval.data", mot["eval"].get("data")), ("mot.eval.validation", mot["eval"].get("validation"))]
    return [(key, value) for key, value in found if isinstance(value, str) and value]


def recipe_inputs(recipe: Recipe) -> list[Input]:
    """Every input the recipe reads, in recipe order."""
    return [Input(key, value, key in ("mot.eval.data", "mot.eval.validation") or Path(value).is_absolute())
            for key, value in input_values(recipe.to_dict())]
