"""Docs stay true: examples are the tested code (shipped recipes: test_recipes.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mot_plugin.builtin.ray_launcher import RaySettings
from mot_plugin.builtin.slurm_launcher import SlurmSettings
from mot_plugin.plugins import BUILTINS
from mot_plugin.recipe import Candidate, Eval, Launch, Merge, MotConfig, Teacher, parse_recipe

ROOT = Path(__file__).parents[1]


def _blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(), flags=re.S)


def test_plugin_examples_are_the_tested_plugins():
    examples = [ROOT / "tests/example_plugin.py", *sorted((ROOT / "tests/example_plugins").glob("[!_]*.py"))]
    assert sorted(_blocks(ROOT / "docs/plugins.md", "python")) == sorted(p.read_text() for p in examples)


def test_plugins_doc_names_every_builtin():
    text = (ROOT / "docs/plugins.md").read_text()
    for name in (*BUILTINS, "mot_plugin.builtin.selected.Selected"):
        assert f"`{name}`" in text, f"docs/plugins.md does not name the built-in plugin {name}"


@pytest.mark.parametrize("doc", ["README.md", "docs/recipe.md"])
def test_recipe_examples_are_valid(doc):
    blocks = [b for b in _blocks(ROOT / doc, "yaml") if "\nmot:" in b]
    assert blocks
    for block in blocks:
        recipe = parse_recipe(yaml.safe_load(block))
        assert len(recipe.mot.teachers) >= 2


@pytest.mark.parametrize("model", [MotConfig, Teacher, Merge, Candidate, Eval, Launch, RaySettings, SlurmSettings])
def test_every_field_is_documented(model):
    text = (ROOT / "docs/recipe.md").read_text()
    for name in model.model_fields:
        assert f"| `{name}` |" in text, f"{model.__name__}.{name} is not in docs/recipe.md"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md"))])
def test_links_between_docs_resolve(doc):
    path = ROOT / doc
    for target, anchor in re.findall(r"\]\(([^)#\s:]*\.md)?(?:#([^)\s]+))?\)", path.read_text()):
        if not target and not anchor:
            continue
        linked = (path.parent / target) if target else path
        assert linked.is_file(), f"{doc}: link to missing {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.M)
            assert anchor in {_anchor(h) for h in headings}, f"{doc}: no heading for #{anchor} in {linked.name}"
