"""Hooks: a third-party plugin changes a branch config and brings its merge executor; discovery
through entry points; misspelled hooks and clashing names fail loudly; tracing; every hook and every
registry is called in a run and documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from safetensors.torch import load_file

from conftest import recipe_data, write_recipe
from counting_plugin import CALLS
from mot_plugin import hookspecs
from mot_plugin.cli import main
from mot_plugin.planner import plan_run
from mot_plugin.plugins import ENTRY_POINT_GROUP, plugin_manager
from mot_plugin.recipe import RecipeError, parse_recipe
from mot_plugin.registry import KINDS

ROOT = Path(__file__).parents[1]
HOOKS = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("mot_")]


def test_third_party_plugin_changes_config_and_its_merge_executor_merges(toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", plugins=["example_plugin", "fake_launcher", "example_plugins.mean_merge"],
                       keep_branches=True, merge={"executor": "mean"})
    result = CliRunner().invoke(main, ["run", str(write_recipe(tmp_path / "r.yaml", data))])
    assert result.exit_code == 0, result.output

    run = tmp_path / "run"
    split = (run / "round-01/branch-wordy/axolotl.yaml").read_text()
    brief = (run / "round-01/branch-brief/axolotl.yaml").read_text()
    assert "learning_rate: 0.0015" in split and "learning_rate: 0.003" in brief

    branches = [load_file(run / f"round-02/branch-{t}/model/model.safetensors") for t in ("brief", "wordy")]
    merged = load_file(run / "round-02/merged/model.safetensors")
    for name, tensor in merged.items():
        assert (tensor - (branches[0][name] + branches[1][name]) / 2).abs().max() < 1e-6
    assert "executor: mean" in (run / "round-02/merge.yaml").read_text(), "merge.yaml describes the merge as run"
    assert '"executor": "mean"' in (run / "round-02/merge.done.json").read_text()
    assert not (run / "round-02/merge.log").exists(), "the built-in mergekit executor must not have run"
    rounds = (run / "example_rounds.txt").read_text().splitlines()
    assert [line.split()[0] for line in rounds] == ["1", "2"]
    assert (run / "round-02/summary.json").is_file(), "the built-in round-end hook runs beside the plugin's"


def test_entry_point_discovery(tmp_path, monkeypatch):
    dist = tmp_path / "mot_example-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mot-example\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nexample = example_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = plugin_manager()
    assert pm.get_plugin("example").__name__ == "example_plugin"


def _plugin_module(tmp_path, monkeypatch, name: str, source: str) -> str:
    """A plugin module `name` with `source`, importable for this test."""
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_misspelled_hook_fails_loudly(tmp_path, monkeypatch):
    module = _plugin_module(tmp_path, monkeypatch, "typo_plugin", "from mot_plugin.hookspecs import hookimpl\n\n"
                            "@hookimpl\ndef mot_branch_confg(recipe, branch):\n    return {}\n")
    with pytest.raises(RecipeError, match="typo_plugin.*mot_branch_confg"):
        plugin_manager([module])


def test_trace_switch_prints_every_hook_call(toy, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOT_TRACE_HOOKS", "1")
    pm = plugin_manager()
    plan_run(parse_recipe(recipe_data(toy, tmp_path / "run")), pm.hook)
    err = capsys.readouterr().err
    assert len(re.findall(r"\[mot hooks\]\s+mot_branch_config \[hook\]", err)) == 4
    assert len(re.findall(r"\[mot hooks\]\s+finish mot_merge_config", err)) == 2


def test_every_hook_and_every_registry_is_called_in_one_run(toy, tmp_path):
    """One fast run (fake training) in which every hook is called, and the selected entry of every
    registry (tests/counting_plugin.py registers one of each kind)."""
    CALLS.clear()
    validation = tmp_path / "validation.jsonl"
    validation.write_text('{"prompt": "1+1?", "answer": "2"}\n')
    data = recipe_data(toy, tmp_path / "run", rounds=1, plugins=["counting_plugin"],
                       launch={"launcher": "counting", "parallel": 2},
                       merge={"executor": "counting", "candidates": [{"name": "plain"},
                                                                     {"name": "byacc", "weights": "validation"}]},
                       baselines=[{"counting": {"teachers": ["wordy"], "steps": 1}}],
                       eval={"data": str(toy["eval"]), "validation": str(validation), "limit": 2,
                             "backend": "counting"})
    result = CliRunner().invoke(main, ["run", str(write_recipe(tmp_path / "r.yaml", data))])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    assert '"executor": "mean"' in (run / "round-01/candidate-plain/merge.done.json").read_text()
    assert (run / "baselines/subset/done.json").is_file() and (run / "eval/subset/done.json").is_file()
    called = set(CALLS)
    assert {hook for hook in HOOKS if hook not in called} == set()
    assert {kind for kind in KINDS.values() if f"{kind}:counting" not in called} == set()
    assert (run / "eval/round-01-candidate-plain/out/metrics.json").is_file()
    assert (run / "eval/validation/round-01-candidate-plain/out/metrics.json").is_file()


def test_a_name_registered_twice_is_one_error(tmp_path, monkeypatch):
    module = _plugin_module(tmp_path, monkeypatch, "twice_plugin",
                            "from mot_plugin.hookspecs import hookimpl\nfrom mot_plugin.registry import Launcher\n\n"
                            "@hookimpl\ndef mot_register(register):\n    register(Launcher('local', run_branch=print))\n")
    with pytest.raises(RecipeError, match="^mot_register: launcher 'local' is registered twice$"):
        plugin_manager([module])


KIND_SECTIONS = {"launcher": "A launcher", "merge executor": "A merge executor", "baseline": "A baseline",
                 "eval backend": "An eval backend"}


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_documented(name):
    spec = getattr(hookspecs, name)
    assert inspect.getdoc(spec), f"{name} has no docstring"
    assert all(p.annotation is not inspect.Parameter.empty for p in inspect.signature(spec).parameters.values())
    assert re.search(rf"^\| `{name}` \|", (ROOT / "docs" / "hooks.md").read_text(), flags=re.M), \
        f"{name} has no row in docs/hooks.md's table"


@pytest.mark.parametrize("kind", sorted(KINDS.values()))
def test_every_registry_has_a_doc_section(kind):
    headings = re.findall(r"^## (.+)$", (ROOT / "docs" / "plugins.md").read_text(), flags=re.M)
    assert KIND_SECTIONS[kind] in headings, f"docs/plugins.md has no section on writing a {kind}"
