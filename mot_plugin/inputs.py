"""The inputs a recipe names (student, tokenizer, adapter, teachers' data, evaluation problems), local
or on the hub, and whether each is here: what `mot plan --preview` marks missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mot_plugin.recipe import Recipe


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


def recipe_inputs(recipe: Recipe) -> list[Input]:
    """Every input the recipe reads, in recipe order."""
    found = []
    for key in ("base_model", "tokenizer_config", "lora_model_dir"):
        value = recipe.axolotl.get(key)
        if isinstance(value, str) and value:
            found.append(Input(key, value, Path(value).is_absolute()))
    for i, teacher in enumerate(recipe.mot.teachers):
        for j, entry in enumerate(teacher.datasets):
            path = entry.get("path")
            if isinstance(path, str):
                found.append(Input(f"mot.teachers.{i}.datasets.{j}.path", path, Path(path).is_absolute()))
    if recipe.mot.eval:
        found.append(Input("mot.eval.data", recipe.mot.eval.data, True))
    if recipe.validation:
        found.append(Input("mot.eval.validation", recipe.validation, True))
    return found
