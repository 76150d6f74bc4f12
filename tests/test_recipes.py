"""Every shipped recipe opens with how to run it, loads, validates (Axolotl's validation of every
branch config included) and plans to the run it promises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mot_plugin.axolotl_config import check_branch_configs
from mot_plugin.planner import plan_run
from mot_plugin.plugins import plugin_manager
from mot_plugin.recipe import load_recipe

ROOT = Path(__file__).parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
PREPARED_BY_COMMANDS = {"paper-qwen3-14b.yaml", "champ-smollm2.yaml"}  # their data does not exist here


def _plan(recipe_file: Path):
    recipe = load_recipe(recipe_file, check_files=recipe_file.name not in PREPARED_BY_COMMANDS)
    pm = plugin_manager(recipe.mot.plugins)
    pm.hook.mot_check_recipe(recipe=recipe)
    plan = plan_run(recipe, pm.hook)
    assert check_branch_configs(plan) == [], "Axolotl has no warnings about a shipped recipe"
    return plan


@pytest.fixture
def in_tmp(toy, tmp_path, monkeypatch):
    """Run from an empty directory holding only the toy files (as `mot toy toy` writes them)."""
    monkeypatch.chdir(tmp_path)
    Path("toy").symlink_to(toy["student"].parent)
    return tmp_path


@pytest.mark.parametrize("recipe_file", RECIPES, ids=lambda p: p.name)
def test_recipe_says_what_it_is_and_plans(recipe_file, in_tmp):
    text = recipe_file.read_text()
    assert text.startswith("# "), "a recipe opens with a comment saying what it is"
    assert re.search(rf"^#\s+mot run recipes/{recipe_file.name}", text, flags=re.M), "and how to run it"
    plan = _plan(recipe_file)
    mot = plan.recipe.mot
    assert plan.branch_steps == mot.rounds * mot.steps_per_round * len(mot.teachers)
    assert str(plan.recipe.run_dir).startswith(str(in_tmp / "runs"))


def test_every_recipe_is_tested():
    assert {p.name for p in RECIPES} == {"toy.yaml", "toy-candidates.yaml"} | PREPARED_BY_COMMANDS


def test_toy_candidates_recipe_merges_four_ways_and_chooses_on_validation(in_tmp):
    plan = _plan(ROOT / "recipes/toy-candidates.yaml")
    mot = plan.recipe.mot
    assert [c.name for c in mot.merge.candidates] == ["mean", "ta-half", "ties", "by-accuracy"]
    assert mot.select == "validation" and mot.eval.validation == str(in_tmp / "toy/validation.jsonl")
    merges = _steps(plan, "merge")
    assert len(merges) == 4 * mot.rounds and not plan.baseline_steps


def _steps(plan, kind):
    return [s for s in plan.steps if s.kind == kind]


def test_paper_recipe(in_tmp):
    plan = _plan(ROOT / "recipes/paper-qwen3-14b.yaml")
    mot = plan.recipe.mot
    assert plan.recipe.student == "Qwen/Qwen3-14B"
    assert [t.name for t in mot.teachers] == ["r1", "qwq", "qwen3-235b", "qwen3-32b"]
    assert (mot.rounds, mot.steps_per_round, mot.merge.method) == (5, 50, "linear")
    assert plan.branch_steps == 1000 and plan.baseline_steps == 4 * 250 + 250
    branches = [s for s in _steps(plan, "branch") if s.round > 0]
    assert len(branches) == 20
    config = branches[0].config
    assert config["datasets"][0]["path"] == str(in_tmp / "data/teachers/r1.jsonl")
    assert (config["max_steps"], config["bf16"], config["deepspeed"]) == (50, True, "deepspeed_configs/zero3_bf16.json")
    assert config["sequence_len"] == 16384 and config["gradient_checkpointing"] is True
    merges = _steps(plan, "merge")
    assert len(merges) == 6  # 5 rounds and the one-shot merge
    assert all("base_model" not in m.config and m.config["out_dtype"] == "bfloat16" for m in merges)
    evals = _steps(plan, "eval")
    assert len(evals) == 6 + 4 + 1 + 1  # round 0..5, four singles, union, one-shot
    assert {(e.config["backend"], e.config["samples"], e.config["data"]) for e in evals} == {
        ("vllm", 8, str(in_tmp / "data/aime.jsonl"))}


def test_champ_recipe(in_tmp):
    plan = _plan(ROOT / "recipes/champ-smollm2.yaml")
    mot = plan.recipe.mot
    assert plan.recipe.student == str(in_tmp / "champ/smollm2")
    names = ["gpt35", "gpt4", "gpt4t", "palm2m"]
    assert [t.name for t in mot.teachers] == names
    assert [t.datasets[0]["path"] for t in mot.teachers] == [str(in_tmp / f"champ/teachers/{n}.jsonl") for n in names]
    assert mot.baselines == ["single", "union", "oneshot"] and mot.eval.data == str(in_tmp / "champ/eval.jsonl")
    config = _steps(plan, "branch")[0].config
    assert (config["bf16"], config["fp16"]) == (False, False), "CPU training"
    assert len(_steps(plan, "eval")) == mot.rounds + 1 + 4 + 1 + 1
