"""Bad input: one line naming the key, file or line; exit code 2; nothing written or trained."""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from conftest import recipe_data, write_recipe
from mot_plugin.cli import main
from mot_plugin.recipe import load_recipe


def _plan_fails(tmp_path, data, *expected: str) -> str:
    recipe = write_recipe(tmp_path / "bad.yaml", data)
    result = CliRunner().invoke(main, ["plan", str(recipe)])
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()  # stdout may say what it was doing (validating with Axolotl)
    assert len(message.splitlines()) == 1, message
    assert message.startswith("mot: error: ")
    for part in expected:
        assert part in message
    assert not (tmp_path / "run").exists(), "bad input must not write anything"
    return message


def _edit(toy, tmp_path, change):
    data = recipe_data(toy, tmp_path / "run")
    change(data)
    return data


def test_good_recipe_plans(toy, tmp_path):
    recipe = write_recipe(tmp_path / "good.yaml", recipe_data(toy, tmp_path / "run"))
    result = CliRunner().invoke(main, ["plan", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "2 teachers x 2 rounds x 3 steps = 12 branch-steps" in result.output
    assert (tmp_path / "run" / "round-02" / "merge.yaml").is_file()
    assert not (tmp_path / "run" / "round-01" / "merged").exists(), "plan must run nothing"


def test_missing_dataset_file(toy, tmp_path):
    def change(d):
        d["mot"]["teachers"][1]["datasets"][0]["path"] = str(tmp_path / "nope.jsonl")
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "mot.teachers.1.datasets.0.path", "nope.jsonl", "does not exist")


def test_malformed_jsonl_line(toy, tmp_path):
    bad = tmp_path / "bad.jsonl"
    rows = toy["teacher:wordy"].read_text().splitlines()[:3]
    bad.write_text("\n".join([rows[0], rows[1], '{"messages": [oops', rows[2]]) + "\n")

    def change(d):
        d["mot"]["teachers"][1]["datasets"][0]["path"] = str(bad)
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), f"{bad}:3:", "malformed JSONL")


def test_teacher_without_data(toy, tmp_path):
    def change(d):
        d["mot"]["teachers"][0]["datasets"] = []
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "mot.teachers.0.datasets")


def test_empty_dataset_file(toy, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")

    def change(d):
        d["mot"]["teachers"][0]["datasets"][0]["path"] = str(empty)
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "empty.jsonl has no rows")


def test_duplicate_teacher_names(toy, tmp_path):
    def change(d):
        d["mot"]["teachers"][1]["name"] = "brief"
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "mot.teachers", "'brief' is used twice")


def test_one_teacher_is_not_enough(toy, tmp_path):
    def change(d):
        del d["mot"]["teachers"][1]
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "mot.teachers")


@pytest.mark.parametrize("where", ["mot", "teacher", "merge"])
def test_unknown_mot_key(toy, tmp_path, where):
    def change(d):
        target = {"mot": d["mot"], "teacher": d["mot"]["teachers"][0], "merge": d["mot"].setdefault("merge", {})}
        target[where]["roundz"] = 3
    key = {"mot": "mot.roundz", "teacher": "mot.teachers.0.roundz", "merge": "mot.merge.roundz"}[where]
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), f"{key}: unknown key")


def test_fewer_device_groups_than_parallel(toy, tmp_path):
    def change(d):
        d["mot"]["launch"] = {"parallel": 2, "devices": ["0"]}
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "launch.devices", "1 device groups for launch.parallel 2")


def test_device_group_smaller_than_processes(toy, tmp_path):
    def change(d):
        d["mot"]["launch"] = {"parallel": 2, "devices": ["0,1", "2"], "processes": 2}
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "launch.devices", "group 1 ('2')", "launch.processes 2")


def test_unknown_merge_method(toy, tmp_path):
    def change(d):
        d["mot"]["merge"] = {"method": "averagez"}
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "mot.merge.method", "'averagez'", "linear")


def test_unknown_merge_parameter(toy, tmp_path):
    def change(d):
        d["mot"]["merge"] = {"method": "linear", "parameters": {"lambda": 0.5}}
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "mot.merge.parameters.lambda", "not a parameter of linear")


def test_invalid_merge_parameter_value(toy, tmp_path):
    def change(d):
        d["mot"]["merge"] = {"method": "linear", "parameters": {"normalize": "sometimes"}}
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "mot.merge.parameters.normalize", "invalid value")


def test_missing_required_merge_parameter(toy, tmp_path):
    def change(d):
        d["mot"]["merge"] = {"method": "slerp"}
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "mot.merge.parameters.t", "required by slerp")


def test_too_many_models_for_method(toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", teachers=("brief", "wordy", "tensfirst"))
    data["mot"]["merge"] = {"method": "slerp", "parameters": {"t": 0.5}}
    _plan_fails(tmp_path, data, "mot.teachers", "slerp merges 2 to 2 models", "gives it 4")


def test_per_teacher_global_parameter(toy, tmp_path):
    def change(d):
        d["mot"]["merge"] = {"method": "ties", "parameters": {"density": 0.5}}
        d["mot"]["teachers"][0]["merge_parameters"] = {"normalize": True}
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "mot.teachers.0.merge_parameters.normalize")


def test_student_without_model(toy, tmp_path):
    (tmp_path / "empty_student").mkdir()

    def change(d):
        d["base_model"] = str(tmp_path / "empty_student")
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "base_model", "holds no model")


def test_student_path_missing(toy, tmp_path):
    def change(d):
        d["base_model"] = "./no/such/student"
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "base_model", "does not exist")


@pytest.mark.parametrize("key", ["max_steps", "datasets", "seed"])
def test_planner_owned_keys_are_refused(toy, tmp_path, key):
    def change(d):
        d[key] = 10
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), f"{key}: set per branch by mot")


def test_override_of_planner_key(toy, tmp_path):
    def change(d):
        d["mot"]["teachers"][0]["overrides"] = {"base_model": "x"}
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "mot.teachers.0.overrides", "'base_model'")


def test_not_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base_model: x\nmot: [\n")
    result = CliRunner().invoke(main, ["plan", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:" in result.output and "not valid YAML" in result.output


def test_unknown_plugin_module(toy, tmp_path):
    def change(d):
        d["mot"]["plugins"] = ["no_such_mot_plugin"]
    _plan_fails(tmp_path, _edit(toy, tmp_path, change), "mot.plugins", "no_such_mot_plugin")


def test_hub_ids_are_kept_and_local_paths_made_absolute(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = recipe_data(toy, tmp_path / "run")
    data["base_model"] = "Qwen/Qwen3-14B"
    data["mot"]["run_dir"] = "runs/x"
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", data))
    assert recipe.student == "Qwen/Qwen3-14B"
    assert recipe.run_dir == tmp_path / "runs" / "x"
    assert json.dumps(recipe.to_dict())  # the resolved recipe is plain data
    assert copy.deepcopy(recipe.to_dict())["mot"]["teachers"][0]["name"] == "brief"
