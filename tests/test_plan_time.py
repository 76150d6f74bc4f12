"""`mot plan` answers fast and says how long the run takes: Axolotl's validation cached by config
hash, time per round from the run's own finished steps (or a tokens-per-second figure), `mot run`'s
ETA, `mot status --json`, `mot --version`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import FAST, recipe_data, write_recipe
from mot_plugin import __version__, axolotl_config, eta
from mot_plugin.cli import main
from mot_plugin.commands.common import run_dir_plan as _run_dir_plan

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _recipe(toy, tmp_path: Path, **mot) -> Path:
    return write_recipe(tmp_path / "r.yaml", recipe_data(toy, tmp_path / "run", **FAST, **mot))


def test_validation_is_cached_by_config_hash(toy, tmp_path, monkeypatch):
    recipe = _recipe(toy, tmp_path)
    first = CliRunner().invoke(main, ["plan", str(recipe)])
    assert first.exit_code == 0 and "Validating 2 branch config(s) with Axolotl" in first.output, first.output
    cache = json.loads((tmp_path / "run" / axolotl_config.VALIDATED_FILE).read_text())
    assert cache["axolotl"] == axolotl_config._axolotl_version() and len(cache["validated"]) == 2
    checked = []
    original = axolotl_config._check
    monkeypatch.setattr(axolotl_config, "_check", lambda *a: (checked.append(a[1].step_id), original(*a)))
    again = CliRunner().invoke(main, ["plan", str(recipe)])
    assert again.exit_code == 0 and checked == [] and "Validating" not in again.output, again.output
    data = recipe_data(toy, tmp_path / "run", **FAST)
    data["mot"]["teachers"][1]["overrides"] = {"learning_rate": 1.0e-4}
    changed = CliRunner().invoke(main, ["plan", str(write_recipe(tmp_path / "r.yaml", data))])
    assert changed.exit_code == 0 and checked == ["round-01/branch-wordy"], "only the changed config"
    monkeypatch.setattr(axolotl_config, "_axolotl_version", lambda: "0.0.1")
    CliRunner().invoke(main, ["plan", str(recipe)])
    assert checked[1:] == ["round-01/branch-brief", "round-01/branch-wordy"], "another Axolotl validates again"


def test_plan_prints_paths_relative_to_the_run_and_time_from_a_throughput(toy, tmp_path):
    unknown = CliRunner().invoke(main, ["plan", str(_recipe(toy, tmp_path))])
    assert "time: unknown until a step has finished" in unknown.output
    assert ["round-01/branch-brief", "pending", "round-01/branch-brief/axolotl.yaml"] in \
        [line.split() for line in unknown.output.splitlines()]
    assert str(tmp_path / "run" / "round-01") not in unknown.output
    # 3 steps x micro_batch_size 4 x 128 tokens at 768 tokens/s: 2 s a branch, two branches a round
    timed = CliRunner().invoke(main, ["plan", str(_recipe(toy, tmp_path)), "--tokens-per-second", "768"])
    assert "rounds 1: 4 s, 2: 4 s" in timed.output, timed.output


def test_time_per_round_and_eta_come_from_the_finished_steps(toy, tmp_path):
    recipe = _recipe(toy, tmp_path, eval={"data": str(toy["eval"])})
    ran = CliRunner().invoke(main, ["run", str(recipe)])
    assert ran.exit_code == 0, ran.output
    assert "    ETA: about " in ran.output and "step(s) left" in ran.output
    plan = _run_dir_plan(str(tmp_path / "run"))
    markers = {s.id: json.loads(s.marker_path.read_text())["seconds"] for s in plan.steps}
    found = eta.estimate(plan)
    round_one = [s for s in plan.steps if s.round == 1 and s.baseline is None]
    assert found.total(round_one, 1) == pytest.approx(sum(markers[s.id] for s in round_one))
    planned = CliRunner().invoke(main, ["plan", str(recipe)])
    assert f"time (from the {len(plan.steps)} finished step(s) of this run): rounds 1: " in planned.output
    assert "left to run: 0 s" in planned.output
    status = CliRunner().invoke(main, ["status", str(tmp_path / "run"), "--json"])
    report = json.loads(status.output)
    assert report["seconds_left"] == 0 and {s["state"] for s in report["steps"]} == {"done"}
    assert [s["step"] for s in report["steps"]] == [s.id for s in plan.steps]
    assert report["steps"][1]["result"]["steps"] == 3 and report["steps"][1]["seconds"] == markers[plan.steps[1].id]


def test_a_branch_fit_takes_its_fixed_cost_and_its_steps_apart(toy, tmp_path):
    """Branches of 3 and 6 steps that took 13 s and 16 s: a 9-step branch takes about 19 s."""
    branch = next(s for s in _run_dir_plan_of(toy, tmp_path).steps if s.kind == "branch")
    three, six = (replace(branch, id=f"b{n}", spec=replace(branch.spec, max_steps=n)) for n in (3, 6))
    assert eta._branch_model([three, six], {"b3": 13.0, "b6": 16.0})(9) == pytest.approx(19.0)
    assert eta._branch_model([three], {"b3": 12.0})(6) == pytest.approx(24.0), "one length: proportional"


def _run_dir_plan_of(toy, tmp_path):
    assert CliRunner().invoke(main, ["plan", str(_recipe(toy, tmp_path))]).exit_code == 0
    return _run_dir_plan(str(tmp_path / "run"))


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output == f"mot (mot-plugin), version {__version__}\n"


def test_status_shows_a_running_branchs_progress_as_its_trainer_recorded_it(toy, tmp_path):
    from mot_plugin.atomic import write_json
    from mot_plugin.rundir import CURRENT_FILE, run_lock
    from mot_plugin.steps import PROGRESS_FILE

    plan = _run_dir_plan_of(toy, tmp_path)
    branch = next(s for s in plan.steps if s.kind == "branch")
    write_json(branch.output_dir / PROGRESS_FILE, {"step": 2, "max_steps": 3})
    with run_lock(plan.recipe.run_dir):  # as a `mot run` running that branch holds it
        write_json(plan.recipe.run_dir / CURRENT_FILE, {"pid": 1, "steps": {branch.id: 0.0}})
        status = CliRunner().invoke(main, ["status", str(tmp_path / "run"), "--json"])
    row = next(s for s in json.loads(status.output)["steps"] if s["step"] == branch.id)
    assert row["state"] == "running" and row["progress"] == [2, 3]
