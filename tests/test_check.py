"""`mot check`: what a recipe would execute, read, write and contact, and its exit code."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import recipe_data, write_recipe
from mot_plugin.cli import main
from mot_plugin.shipped import RECIPES, recipe_text


def _check(recipe: Path, *allow: str):
    return CliRunner().invoke(main, ["check", str(recipe), *(a for kind in allow for a in ("--allow", kind))])


def test_plugin_remote_code_and_slurm_setup_are_listed_and_risky(toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", launch={
        "launcher": "slurm", "slurm": {"setup": ["source /opt/venv/bin/activate"], "sbatch_args": ["--gres=gpu:1"]}})
    data["plugins"] = ["my_company.axolotl_plugins.TrackerPlugin"]
    data["trust_remote_code"] = True
    result = _check(write_recipe(tmp_path / "r.yaml", data))
    assert result.exit_code == 3, result.output
    lines = result.output.splitlines()
    for kind, text in (("axolotl-plugin", "plugins: my_company.axolotl_plugins.TrackerPlugin"),
                       ("remote-code", "trust_remote_code: True"),
                       ("shell", "mot.launch.slurm.setup.0: source /opt/venv/bin/activate")):
        assert any(line.split()[:2] == ["RISK", kind] and line.endswith(text) for line in lines), (kind, result.output)
    assert "    | source /opt/venv/bin/activate" in lines and "    | #SBATCH --gres=gpu:1" in lines
    assert "outside-path" in result.output, "the toy data live outside the recipe's folder"
    assert not (tmp_path / "run").exists(), "check writes nothing"
    accepted = _check(tmp_path / "r.yaml", "axolotl-plugin", "remote-code", "shell", "outside-path")
    assert accepted.exit_code == 0 and "Nothing risky found." in accepted.output
    assert "allowed" in accepted.output


def test_everything_a_recipe_contacts(toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", plugins=["some_mot_plugin"],
                       launch={"launcher": "ray", "ray": {"address": "ray://head:10001"}})
    data["mot"]["teachers"][0]["datasets"].append({"path": "org/cots", "type": "my_formats.cot", "revision": "abc123"})
    data["mot"]["teachers"][1]["datasets"].append({"path": "org/other", "type": "chat_template"})
    data.update(hub_model_id="me/student", wandb_project="mot", chat_template_jinja="https://example.com/t.jinja")
    result = _check(write_recipe(tmp_path / "r.yaml", data))
    assert result.exit_code == 3
    expected = [("plugin", "mot.plugins: some_mot_plugin"), ("dataset-code", "mot.teachers.0.datasets.1.type: my_formats.cot"),
                ("push", "hub_model_id: me/student"), ("tracker", "wandb_project: mot"),
                ("url", "chat_template_jinja: https://example.com/t.jinja"), ("ray", "mot.launch.ray.address: ray://head:10001"),
                ("hub", "mot.teachers.1.datasets.1.path: org/other  (hub dataset, no revision pinned)")]
    for kind, text in expected:
        assert any(line.split()[:2] == ["RISK", kind] and line.endswith(text) for line in result.output.splitlines()), kind
    assert "ok" in next(line for line in result.output.splitlines() if "org/cots" in line and "revision abc123" in line)


def test_a_recipe_inside_its_folder_with_local_inputs_is_clean(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("toy").symlink_to(toy["student"].parent)
    assert CliRunner().invoke(main, ["init", ".", "--from", "toy"]).exit_code == 0
    result = _check(tmp_path / "toy.yaml")
    assert result.exit_code == 0, result.output
    assert "mot.run_dir: " in result.output and "Nothing risky found." in result.output


def test_unknown_kind_is_bad_input(toy, tmp_path):
    result = _check(write_recipe(tmp_path / "r.yaml", recipe_data(toy, tmp_path / "run")), "everything")
    assert result.exit_code == 2 and "--allow: unknown kind 'everything'" in result.output


@pytest.mark.parametrize("name", RECIPES)
def test_every_shipped_recipe_passes_the_check_its_comments_give(name, tmp_path, monkeypatch):
    """From the repository root, as the recipe's opening comments say (before its data exist)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / f"{name}.yaml").write_text(recipe_text(name))
    (command,) = [line.split("#", 2)[1].split()[1:] for line in recipe_text(name).splitlines()
                  if line.startswith("#   mot check ")]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0 and "Nothing risky found." in result.output, result.output
    student = next(line for line in result.output.splitlines() if " base_model: " in line)
    assert ("hub" in student.split()) == (name == "paper-qwen3-14b"), "a local student is no hub id"


def test_a_relative_path_that_climbs_out_or_into_a_hidden_folder_is_outside(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = recipe_data(toy, Path("run"))
    for i, path in enumerate(("../elsewhere/a.jsonl", ".ssh/b.jsonl")):
        data["mot"]["teachers"][i]["datasets"][0]["path"] = path
    (tmp_path / "recipes").mkdir()
    result = _check(write_recipe(tmp_path / "recipes/r.yaml", data))
    assert result.exit_code == 3
    for key in ("mot.teachers.0.datasets.0.path", "mot.teachers.1.datasets.0.path"):
        assert any(line.split()[:3] == ["RISK", "outside-path", f"{key}:"] for line in result.output.splitlines()), key
    assert "ok                     mot.run_dir: " in result.output, "run: below the working directory"
