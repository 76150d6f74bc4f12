"""Docs and shipped recipes stay true: examples are the tested code; recipes load and plan."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mot_plugin.planner import plan_run
from mot_plugin.plugins import plugin_manager
from mot_plugin.recipe import Eval, Launch, Merge, MotConfig, Ray, Slurm, Teacher, load_recipe, parse_recipe

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


@pytest.mark.parametrize("recipe_file", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_load_and_plan(recipe_file, toy, tmp_path, monkeypatch):
    first = recipe_file.read_text().splitlines()[0]
    assert first.startswith("# "), "a recipe opens with a comment saying what it is"
    assert re.search(r"^#\s+mot run recipes/", recipe_file.read_text(), flags=re.M), "and how to run it"
    monkeypatch.chdir(tmp_path)
    Path("toy").symlink_to(toy["student"].parent)
    recipe = load_recipe(recipe_file)
    pm = plugin_manager(recipe.mot.plugins)
    pm.hook.mot_check_recipe(recipe=recipe)
    plan = plan_run(recipe, pm.hook)
    assert plan.branch_steps == recipe.mot.rounds * recipe.mot.steps_per_round * len(recipe.mot.teachers)
