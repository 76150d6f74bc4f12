"""Docs stay true: examples are the tested code (shipped recipes: test_recipes.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mot_plugin.recipe import Eval, Launch, Merge, MotConfig, Ray, Slurm, Teacher, parse_recipe

ROOT = Path(__file__).parents[1]


def _blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(), flags=re.S)


def test_plugin_example_is_the_tested_plugin():
    (block,) = _blocks(ROOT / "docs/plugins.md", "python")
    assert block == (ROOT / "tests/example_plugin.py").read_text()


@pytest.mark.parametrize("doc", ["README.md", "docs/recipe.md"])
def test_recipe_examples_are_valid(doc):
    blocks = [b for b in _blocks(ROOT / doc, "yaml") if "\nmot:" in b]
    assert blocks
    for block in blocks:
        recipe = parse_recipe(yaml.safe_load(block))
        assert len(recipe.mot.teachers) >= 2


@pytest.mark.parametrize("model", [MotConfig, Teacher, Merge, Eval, Launch, Ray, Slurm])
def test_every_field_is_documented(model):
    text = (ROOT / "docs/recipe.md").read_text()
    for name in model.model_fields:
        assert f"| `{name}` |" in text, f"{model.__name__}.{name} is not in docs/recipe.md"
