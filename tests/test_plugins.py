"""The example plugins of docs/plugins.md (tests/example_plugins/), installed through the `mot`
entry-point group and selected from a recipe by name: a launcher, a merge executor, a baseline and
an eval backend. Fast: registration, planning, refusal of their bad settings. Slow: one tiny recipe
selecting all four, with the real Axolotl."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

from conftest import recipe_data, write_recipe
from mot_plugin.cli import main
from mot_plugin.plugins import ENTRY_POINT_GROUP, plugin_manager
from mot_plugin.recipe import Eval
from mot_plugin.registry import Baseline, EvalBackend, Launcher, MergeExecutor, collect

TESTS = Path(__file__).parent
EXAMPLES = {"pinned_launcher": (Launcher, "pinned"), "mean_merge": (MergeExecutor, "mean"),
            "subset_baseline": (Baseline, "subset"), "instruct_backend": (EvalBackend, "instruct")}


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The examples as an installed distribution (its entry points in the `mot` group), seen by this
    process and by the steps' processes (PYTHONPATH)."""
    site = tmp_path / "site"
    dist = site / "mot_examples-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mot-examples\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n" + "".join(f"{name} = example_plugins.{name}\n" for name in EXAMPLES))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), str(TESTS),
                                                                   os.environ.get("PYTHONPATH")])))
    return site


def _recipe(toy, tmp_path, **changes):
    """Two teachers, one round; every example plugin selected by name."""
    mot = dict(rounds=1, steps=2, keep_branches=True,
               launch={"launcher": "pinned", "pinned": {"devices": {"brief": "", "wordy": ""}, "default": ""}},
               merge={"executor": "mean", "mean": {"files_from": "student"}},
               baselines=[{"subset": {"teachers": ["wordy"], "steps": 2}}],
               eval={"data": str(toy["eval"]), "limit": 2, "max_new_tokens": 4, "backend": "instruct",
                     "instruct": {"text": " Answer:"}})
    for key, value in changes.items():
        mot[key] = value
    return write_recipe(tmp_path / "recipe.yaml", recipe_data(toy, tmp_path / "run", **mot))


def test_examples_register_through_the_entry_point_group(installed):
    pm = plugin_manager()
    registry = collect(pm.hook)
    for module, (kind, name) in EXAMPLES.items():
        assert pm.get_plugin(module).__name__ == f"example_plugins.{module}"
        assert registry.entries[kind][name].name == name
    assert sorted(registry.entries[Launcher]) == ["local", "pinned", "ray", "slurm"]
    assert sorted(registry.entries[Baseline]) == ["oneshot", "single", "subset", "union"]


def test_a_recipe_selects_them_by_name(installed, toy, tmp_path):
    result = CliRunner().invoke(main, ["plan", str(_recipe(toy, tmp_path))])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    merge = yaml.safe_load((run / "round-01/merge.yaml").read_text())
    assert merge["executor"] == "mean" and merge["files_from"] == str(toy["student"])
    assert [m["weight"] for m in merge["models"]] == [1.0, 1.0]
    assert yaml.safe_load((run / "baselines/subset/axolotl.yaml").read_text())["max_steps"] == 2
    evaluation = yaml.safe_load((run / "eval/subset/eval.yaml").read_text())
    assert evaluation["backend"] == "instruct" and evaluation["instruct"] == {"text": " Answer:"}
    assert "launcher: pinned" in result.output


def test_the_doc_recipe_selects_them(installed, toy, tmp_path):
    """docs/plugins.md's recipe block (its teachers r1 and qwq played by the toy's brief and wordy)."""
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", (TESTS.parent / "docs/plugins.md").read_text(), flags=re.S)
                if "executor: mean" in b and "candidates" not in b]
    block = block.replace("r1", "brief").replace("qwq", "wordy").replace("data/eval.jsonl", str(toy["eval"]))
    data = recipe_data(toy, tmp_path / "run")
    data["mot"].update(yaml.safe_load(block)["mot"])
    result = CliRunner().invoke(main, ["plan", str(write_recipe(tmp_path / "r.yaml", data))])
    assert result.exit_code == 0, result.output
    assert "baseline/subset" in result.output and "launcher: pinned" in result.output


def test_the_backend_gets_its_settings(installed, monkeypatch):
    from mot_plugin.builtin import evaluation
    from mot_plugin.evaluate import backend_generator

    seen = []
    monkeypatch.setattr(evaluation, "generate_transformers", lambda model, prompts, settings, **kw: seen.extend(prompts))
    settings = Eval.model_validate({"data": "eval.jsonl", "backend": "instruct", "instruct": {"text": " Answer:"}})
    backend_generator(settings)("model", ["1+1?"], n=1)
    assert seen == ["1+1? Answer:"]


BAD = [
    ({"launch": {"launcher": "pinned", "pinned": {"devices": {"brief": "0"}, "defualt": "1"}}},
     "mot.launch.pinned.defualt: unknown key"),
    ({"launch": {"launcher": "pinned", "pinned": {"devices": {}}}}, "mot.launch.pinned.devices: Dictionary should have at least 1"),
    ({"launch": {"launcher": "pinned", "pinned": {"devices": {"brief": "0"}}}},
     "mot.launch.pinned.devices: no devices for teacher 'wordy' (or set a default)"),
    ({"launch": {"launcher": "pinned", "pinned": {"devices": {"brif": "0"}, "default": "1"}}},
     "mot.launch.pinned.devices.brif: no teacher of that name"),
    ({"launch": {"launcher": "pined"}}, "mot.launch.launcher: unknown launcher 'pined' (registered: local, pinned, ray, slurm)"),
    ({"merge": {"executor": "mean", "mean": {"files_from": "nowhere"}}}, "mot.merge.mean.files_from: Input should be"),
    ({"merge": {"executor": "mean", "method": "ties", "parameters": {"density": 0.5}}},
     "mot.merge.method: the mean executor only averages (linear), not ties"),
    ({"merge": {"meen": {}}}, "mot.merge.meen: unknown key"),
    ({"baselines": [{"subset": {"teachers": []}}]}, "mot.baselines.0.subset.teachers: List should have at least 1"),
    ({"baselines": [{"subset": {}}]}, "mot.baselines.0.subset.teachers: Field required"),
    ({"eval": {"data": "EVAL", "backend": "instruct", "instruct": {"txt": "x"}}}, "mot.eval.instruct.txt: unknown key"),
]


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize("changes, message", BAD, ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(BAD)])
def test_a_bad_plugin_setting_is_one_line_naming_the_key(installed, toy, tmp_path, command, changes, message):
    changes = json.loads(json.dumps(changes).replace('"EVAL"', json.dumps(str(toy["eval"]))))
    recipe = _recipe(toy, tmp_path, **changes)
    result = CliRunner().invoke(main, [command, str(recipe)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mot: error: {recipe}: {message}"), result.output
    assert not (tmp_path / "run").exists(), "nothing may be written"


@pytest.mark.slow
def test_one_recipe_runs_all_four_examples(installed, toy, tmp_path):
    """The real Axolotl trains through the pinned launcher, the mean executor merges, the subset
    baseline trains and is evaluated, every evaluation generates through the instruct backend."""
    result = CliRunner().invoke(main, ["run", str(_recipe(toy, tmp_path))])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    for teacher in ("brief", "wordy"):
        where = json.loads((run / f"round-01/branch-{teacher}/where.json").read_text())
        assert where["launcher"] == "pinned" and where["devices"] == ""
    branches = [load_file(run / f"round-01/branch-{t}/model/model.safetensors") for t in ("brief", "wordy")]
    merged = load_file(run / "round-01/merged/model.safetensors")
    assert all((merged[k] - (branches[0][k] + branches[1][k]) / 2).abs().max() < 1e-6 for k in merged)
    assert json.loads((run / "round-01/merge.done.json").read_text())["result"]["executor"] == "mean"
    assert json.loads((run / "baselines/subset/done.json").read_text())["result"]["steps"] == 2
    for name in ("round-00", "round-01", "subset"):
        metrics = json.loads((run / f"eval/{name}/out/metrics.json").read_text())
        assert metrics["n_problems"] == 2
    report = CliRunner().invoke(main, ["report", str(run)])
    assert report.exit_code == 0, report.output
    assert "subset" in json.loads((run / "metrics.json").read_text())["baselines"]


def test_mot_plugins_lists_every_entry_with_its_distribution(installed):
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert ["merge", "executor", "mean", "example_plugins.mean_merge", "(mot-examples)"] in rows
    assert ["launcher", "slurm", "mot_plugin.builtin.slurm_launcher", "(mot-plugin)"] in rows
    kinds = {" ".join(row[:2]) if row[0] in ("merge", "eval") else row[0] for row in rows}
    assert kinds == {"launcher", "merge executor", "baseline", "eval backend"}
