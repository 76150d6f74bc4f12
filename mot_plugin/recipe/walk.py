"""The one walk over the inputs a recipe names: the student, its tokenizer and adapter, every
teacher's datasets and the evaluation problems, in recipe order, on recipe data as written (a recipe
file's YAML) or resolved (a loaded recipe's `to_dict()`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mot_plugin.recipe.resolved import Recipe

MODEL_KEYS = ("base_model", "tokenizer_config", "lora_model_dir")
"""The shared Axolotl keys that name an input: a local path or a hub id."""
EVAL_KEYS = ("data", "validation")
"""The `mot.eval` keys that name a local file of problems."""


@dataclass(frozen=True)
class Input:
    """One input as the recipe names it."""

    key: str
    """Where the recipe names it (`base_model`, `mot.teachers.0.datasets.0.path`, `mot.eval.data`, ...)."""
    value: Any
    """As the data holds it: a path or hub id once loaded; before, possibly missing or not a string."""
    hub: bool = True
    """Whether it may name a hub id (models and datasets); evaluation problems are always local files."""
    entry: dict[str, Any] | None = None
    """A dataset's Axolotl `datasets` entry."""
    teacher: str | None = None
    """The teacher whose dataset it is."""

    @property
    def local(self) -> bool:
        """A local path (absolute after loading); otherwise a hub id."""
        return not self.hub or Path(self.value).is_absolute()

    @property
    def present(self) -> bool | None:
        """Whether a local input exists; None for a hub id (not checked: no network)."""
        return Path(self.value).exists() if self.local else None


def _mot(data: dict[str, Any]) -> dict[str, Any]:
    return data.get("mot") if isinstance(data.get("mot"), dict) else {}


def model_inputs(data: dict[str, Any]) -> list[Input]:
    """The student, its tokenizer and its adapter (`MODEL_KEYS` of the shared Axolotl keys)."""
    return [Input(key, data.get(key)) for key in MODEL_KEYS]


def dataset_inputs(data: dict[str, Any]) -> list[Input]:
    """Every teacher's datasets, by their `path`."""
    found = []
    for i, teacher in enumerate(_mot(data).get("teachers") or []):
        entries = teacher.get("datasets") if isinstance(teacher, dict) else None
        name = teacher.get("name") if isinstance(teacher, dict) else None
        for j, entry in enumerate(entries or []):
            entry = entry if isinstance(entry, dict) else None
            found.append(Input(f"mot.teachers.{i}.datasets.{j}.path", entry and entry.get("path"), entry=entry,
                               teacher=name))
    return found


def eval_inputs(data: dict[str, Any]) -> list[Input]:
    """The evaluation problems (`mot.eval.data`, `mot.eval.validation`)."""
    block = _mot(data).get("eval")
    if not isinstance(block, dict):
        return []
    return [Input(f"mot.eval.{key}", block.get(key), hub=False) for key in EVAL_KEYS]


def walk(data: dict[str, Any]) -> list[Input]:
    """Every input named in recipe data, in recipe order, values as the data holds them."""
    return [*model_inputs(data), *dataset_inputs(data), *eval_inputs(data)]


def named(inputs: list[Input]) -> list[Input]:
    """The inputs whose value is a path or hub id (a non-empty string)."""
    return [found for found in inputs if isinstance(found.value, str) and found.value]


def input_values(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, value) of every input named in recipe data, in recipe order; values that are not strings
    are skipped."""
    return [(found.key, found.value) for found in named(walk(data))]


def recipe_inputs(recipe: Recipe) -> list[Input]:
    """Every input the recipe reads, in recipe order."""
    return named(walk(recipe.to_dict()))
