"""The planner: golden files for the exact configs, and fingerprints that track what changed."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conftest import recipe_data
from mot_plugin.hookspecs import hookimpl
from mot_plugin.planner import plan_run
from mot_plugin.plugins import plugin_manager
from mot_plugin.recipe import dump_yaml, parse_recipe

GOLDEN = Path(__file__).parent / "golden"


def _plan(data):
    recipe = parse_recipe(data)
    pm = plugin_manager(recipe.mot.plugins)
    pm.hook.mot_check_recipe(recipe=recipe)
    return plan_run(recipe, pm.hook)


def _render(plan, toy, tmp_path) -> str:
    steps = [{"id": s.id, "kind": s.kind, "deps": list(s.deps), "config_path": str(s.config_path),
              "config": s.config} for s in plan.steps]
    text = dump_yaml({"branch_steps": plan.branch_steps, "steps": steps})
    return text.replace(str(toy["student"].parent), "$TOY").replace(str(tmp_path), "$TMP")


@pytest.mark.parametrize("name, merge", [
    ("linear", {"method": "linear"}),
    ("task_arithmetic", {"method": "task_arithmetic", "parameters": {"normalize": True}}),
])
def test_plan_matches_golden(toy, tmp_path, name, merge):
    data = recipe_data(toy, tmp_path / "run", merge=merge)
    data["mot"]["teachers"][1]["overrides"] = {"learning_rate": 1.0e-3}
    data["mot"]["teachers"][1]["weight"] = 2.0
    text = _render(_plan(data), toy, tmp_path)
    golden = GOLDEN / f"plan-{name}.yaml"
    if os.environ.get("MOT_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_branch_config_pins_tokenizer_and_saves_only_weights(toy, tmp_path):
    plan = _plan(recipe_data(toy, tmp_path / "run", rounds=3))
    branches = [s for s in plan.steps if s.kind == "branch"]
    assert {s.config["tokenizer_config"] for s in branches} == {str(toy["student"])}
    assert {s.config["save_strategy"] for s in branches} == {"no"}
    assert [s.config["base_model"] for s in branches if s.round == 3] == [str(tmp_path / "run/round-02/merged")] * 2
    # one prepared-data directory per teacher, the same in every round, named after the data's content
    prepared = sorted({s.config["dataset_prepared_path"] for s in branches})
    assert [Path(p).parent for p in prepared] == [tmp_path / "run/prepared"] * 2
    assert [re.fullmatch(r"(\w+)-[0-9a-f]{12}", Path(p).name).group(1) for p in prepared] == ["brief", "wordy"]
    assert [s.config["seed"] for s in branches] == [42, 42, 43, 43, 44, 44]
    assert plan.branch_steps == 3 * 2 * 3


def test_base_model_methods_merge_onto_the_rounds_student(toy, tmp_path):
    plan = _plan(recipe_data(toy, tmp_path / "run", merge={"method": "ties", "parameters": {"density": 0.5}}))
    merges = [s for s in plan.steps if s.kind == "merge"]
    assert merges[0].config["base_model"] == str(toy["student"])
    assert merges[1].config["base_model"] == str(tmp_path / "run/round-01/merged")
    linear = _plan(recipe_data(toy, tmp_path / "run2"))
    assert all("base_model" not in s.config for s in linear.steps if s.kind == "merge")


def test_fingerprints_change_downstream_only(toy, tmp_path):
    before = {s.id: s.fingerprint for s in _plan(recipe_data(toy, tmp_path / "run")).steps}
    data = recipe_data(toy, tmp_path / "run")
    data["mot"]["teachers"][1]["overrides"] = {"learning_rate": 1.0e-3}
    after = {s.id: s.fingerprint for s in _plan(data).steps}
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed == ["round-01/branch-wordy", "round-01/merge", "round-02/branch-brief",
                       "round-02/branch-wordy", "round-02/merge"]


def test_planning_is_deterministic(toy, tmp_path):
    first = _plan(recipe_data(toy, tmp_path / "run"))
    second = _plan(recipe_data(toy, tmp_path / "run"))
    assert [(s.id, s.fingerprint, s.config) for s in first.steps] == [
        (s.id, s.fingerprint, s.config) for s in second.steps]


class _Bf16Merges:
    """A plugin that wraps the built-in merge config."""

    @hookimpl(wrapper=True)
    def mot_merge_config(self, recipe, merge):
        config = yield
        config["out_dtype"] = "bfloat16"
        return config


def test_a_wrapper_edits_the_merge_config(toy, tmp_path):
    recipe = parse_recipe(recipe_data(toy, tmp_path / "run"))
    pm = plugin_manager()
    plain = plan_run(recipe, pm.hook)
    pm.register(_Bf16Merges())
    wrapped = plan_run(recipe, pm.hook)
    merges = [(a, b) for a, b in zip(plain.steps, wrapped.steps) if a.kind == "merge"]
    assert all(a.config["out_dtype"] == "float32" and b.config["out_dtype"] == "bfloat16" for a, b in merges)
    assert all(a.fingerprint != b.fingerprint for a, b in merges)


def _ids(plan, prefix):
    return [(s.id, s.spec.max_steps if s.kind == "branch" else None) for s in plan.steps if s.id.startswith(prefix)]


def test_baselines_sequential_budget(toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", baselines=["single", "union", "oneshot"],
                       eval={"data": str(toy["eval"])})
    plan = _plan(data)
    assert _ids(plan, "baseline/") == [("baseline/single-brief", 6), ("baseline/single-wordy", 6),
                                       ("baseline/union", 6), ("baseline/oneshot", None)]
    assert [s.id for s in plan.steps if s.kind == "eval"] == [
        "eval/round-00", "eval/round-01", "eval/round-02", "eval/single-brief", "eval/single-wordy",
        "eval/union", "eval/oneshot"]
    union = plan.steps[[s.id for s in plan.steps].index("baseline/union")]
    assert [d["path"] for d in union.config["datasets"]] == [str(toy["teacher:brief"]), str(toy["teacher:wordy"])]
    assert union.config["base_model"] == str(toy["student"])
    oneshot = [s for s in plan.steps if s.id == "baseline/oneshot"][0]
    assert oneshot.deps == ("baseline/single-brief", "baseline/single-wordy"), "sequential oneshot reuses singles"
    assert plan.branch_steps == 12 and plan.baseline_steps == 18
    assert [s.id for s in plan.steps if s.ends_round] == ["eval/round-01", "eval/round-02"]


def test_baselines_compute_matched_budget(toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", baselines=["single", "union", "oneshot"], baseline_budget="compute")
    plan = _plan(data)
    assert _ids(plan, "baseline/") == [
        ("baseline/single-brief", 12), ("baseline/single-wordy", 12), ("baseline/union", 12),
        ("baseline/oneshot-brief", 6), ("baseline/oneshot-wordy", 6), ("baseline/oneshot", None)]
    assert plan.baseline_steps == 12 + 12 + 12 + 12
    assert [s.id for s in plan.steps if s.ends_round] == ["round-01/merge", "round-02/merge"]


def test_steps_carry_their_lineage_and_only_merged_branches_are_pruned(toy, tmp_path):
    evaluation = {"data": str(toy["eval"]), "branches": True}
    plan = _plan(recipe_data(toy, tmp_path / "run", baselines=["union", "oneshot", "single"], eval=evaluation))
    lineage = {s.id: s.baseline for s in plan.steps}
    assert {lineage[i] for i in ("eval/round-00", "round-01/branch-brief", "round-02/merge", "eval/round-02")} == {None}
    assert lineage["baseline/union"] == lineage["eval/union"] == "union"
    # oneshot, planned before single, trains the single branches (sequential budget); single evaluates them
    assert lineage["baseline/single-brief"] == lineage["baseline/oneshot"] == "oneshot"
    assert lineage["eval/single-brief"] == "single"
    by_id = {s.id: s for s in plan.steps}
    pruned = {i for i, s in by_id.items() if plan.prunable(s)}
    assert pruned == {f"round-{r:02d}/branch-{t}" for r in (1, 2) for t in ("brief", "wordy")}, \
        "a branch evaluated as a result is kept; MoT branches go after their merge and their own evaluation"
    only_oneshot = _plan(recipe_data(toy, tmp_path / "run", baselines=["oneshot"], baseline_budget="compute"))
    assert [s.id for s in only_oneshot.steps if only_oneshot.prunable(s) and s.baseline] == [
        "baseline/oneshot-brief", "baseline/oneshot-wordy"]


def test_a_plugin_baseline_plans_its_own_steps(toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", plugins=["example_plugins.subset_baseline"],
                       baselines=[{"subset": {"teachers": ["wordy"], "steps": 4}}], eval={"data": str(toy["eval"])})
    plan = _plan(data)
    assert [(s.id, s.baseline) for s in plan.steps if s.baseline] == [("baseline/subset", "subset"),
                                                                     ("eval/subset", "subset")]
    branch = plan.steps[-2]
    assert branch.spec.max_steps == 4 and branch.config["datasets"][0]["path"] == str(toy["teacher:wordy"])
    assert plan.baseline_steps == 4


def test_branch_evaluations_come_after_the_merge_and_before_the_round_end(toy, tmp_path):
    evaluation = {"data": str(toy["eval"])}
    plan = _plan(recipe_data(toy, tmp_path / "run", eval={**evaluation, "branches": True}))
    teachers = [t.name for t in plan.recipe.mot.teachers]
    by_id = {s.id: s for s in plan.steps}
    branch_evals = [f"eval/round-01-branch-{t}" for t in teachers]
    assert [s.id for s in plan.steps if s.round == 1] == [
        *(f"round-01/branch-{t}" for t in teachers), "round-01/merge", *branch_evals, "eval/round-01"]
    first = by_id[branch_evals[0]]
    assert (first.spec.role, first.spec.teacher, first.spec.name, first.round) == (
        "branch", teachers[0], f"round-01-branch-{teachers[0]}", 1)
    assert first.deps == (f"round-01/branch-{teachers[0]}",)
    assert first.config["model"] == str(by_id[f"round-01/branch-{teachers[0]}"].output_dir)
    assert by_id["eval/round-01"].deps == ("round-01/merge", *branch_evals) and by_id["eval/round-01"].ends_round
    assert by_id["eval/round-01"].spec.role == "round"
    # a branch's weights are deleted only after its merge and its evaluation
    assert [s.id for s in plan.readers(by_id[f"round-01/branch-{teachers[0]}"])] == [
        "round-01/merge", branch_evals[0]]
    off = _plan(recipe_data(toy, tmp_path / "run", eval=evaluation))
    assert all((s.config, s.fingerprint) == (by_id[s.id].config, by_id[s.id].fingerprint) for s in off.steps)
    assert not any(s.spec.role == "branch" for s in off.steps if s.kind == "eval")
    assert "branches" not in by_id["eval/round-01"].config, "the option does not change evaluation configs"
    assert plan.disk_estimate(1) == off.disk_estimate(1) == 4
