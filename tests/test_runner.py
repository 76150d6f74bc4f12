"""The runner with a fast launcher plugin: resume, reruns on change, failure, locking, status."""

from __future__ import annotations

import itertools
import json
import shutil

import pytest
import yaml
from click.testing import CliRunner

from conftest import FAST, recipe_data, write_recipe
from fake_launcher import CALLS, SPANS
from mot_plugin import runner
from mot_plugin.cli import main
from mot_plugin.sizes import human_bytes
from mot_plugin.rundir import run_lock

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(tmp_path, data, command="run"):
    recipe = write_recipe(tmp_path / "r.yaml", data)
    target = str(recipe) if command in ("run", "plan") else str(tmp_path / "run")
    return CliRunner().invoke(main, [command, target])


def _calls(tmp_path) -> list[str]:
    path = tmp_path / "run" / CALLS
    return path.read_text().splitlines() if path.exists() else []


def _fast(toy, tmp_path, **mot):
    """Branches by the fake launcher, merges by the example mean executor: no Axolotl, no mergekit."""
    return recipe_data(toy, tmp_path / "run", **FAST, **mot)


def test_rerun_skips_finished_steps(toy, tmp_path):
    assert _run(tmp_path, _fast(toy, tmp_path)).exit_code == 0
    assert len(_calls(tmp_path)) == 4
    done = (tmp_path / "run/round-01/branch-brief/done.json").read_text()
    again = _run(tmp_path, _fast(toy, tmp_path))
    assert again.exit_code == 0 and again.output.count("done earlier, skipped") == 6
    assert len(_calls(tmp_path)) == 4
    assert (tmp_path / "run/round-01/branch-brief/done.json").read_text() == done


@pytest.mark.parametrize("keep_branches", [True, False])
def test_changed_config_reruns_that_step_and_what_follows(toy, tmp_path, keep_branches):
    assert _run(tmp_path, _fast(toy, tmp_path, keep_branches=keep_branches)).exit_code == 0
    data = _fast(toy, tmp_path, keep_branches=keep_branches)
    data["mot"]["teachers"][1]["overrides"] = {"learning_rate": 1.0e-3}
    assert _run(tmp_path, data).exit_code == 0
    # the unchanged sibling trains again only if its weights were deleted after the first merge
    again = [] if keep_branches else ["round-01/branch-brief"]
    assert _calls(tmp_path)[4:] == [*again, "round-01/branch-wordy", "round-02/branch-brief", "round-02/branch-wordy"]


def _prepared_dir(tmp_path, branch: str) -> str:
    return yaml.safe_load((tmp_path / f"run/{branch}/axolotl.yaml").read_text())["dataset_prepared_path"]


def test_changed_training_file_reruns_its_branches(toy, tmp_path):
    corpus = tmp_path / "wordy.jsonl"
    shutil.copy(toy["teacher:wordy"], corpus)
    data = _fast(toy, tmp_path)
    data["mot"]["teachers"][1]["datasets"][0]["path"] = str(corpus)
    assert _run(tmp_path, data).exit_code == 0
    recorded = json.loads((tmp_path / "run/data.json").read_text())[str(corpus)]["sha256"]
    before = {b: _prepared_dir(tmp_path, f"round-01/branch-{b}") for b in ("brief", "wordy")}
    with corpus.open("a") as handle:  # same path, one more row
        handle.write(corpus.read_text().splitlines()[0] + "\n")
    assert _run(tmp_path, data).exit_code == 0
    # wordy's branches train again (brief's round-1 branch too: its weights went after the merge)
    assert _calls(tmp_path)[4:] == ["round-01/branch-brief", "round-01/branch-wordy",
                                    "round-02/branch-brief", "round-02/branch-wordy"]
    assert json.loads((tmp_path / "run/data.json").read_text())[str(corpus)]["sha256"] != recorded
    assert _prepared_dir(tmp_path, "round-01/branch-brief") == before["brief"]
    assert _prepared_dir(tmp_path, "round-01/branch-wordy") != before["wordy"], "stale tokenized data reused"


def test_branch_weights_are_deleted_after_their_merge(toy, tmp_path):
    data = _fast(toy, tmp_path, baselines=["single"])
    assert _run(tmp_path, data).exit_code == 0
    run = tmp_path / "run"
    assert not list(run.glob("round-*/branch-*/model")), "MoT branch weights outlived their merge"
    assert (run / "round-02/merged/model.safetensors").is_file()
    assert (run / "baselines/single-brief/model/model.safetensors").is_file(), "baselines are results: kept"
    status = _run(tmp_path, data, "status").output
    assert status.count("weights deleted after merge") == 4


def test_plan_prints_the_peak_disk(toy, tmp_path):
    size = sum(f.stat().st_size for f in toy["student"].glob("*.safetensors"))
    for keep, checkpoints in ((False, 4), (True, 6)):
        output = _run(tmp_path, _fast(toy, tmp_path, keep_branches=keep), "plan").output
        assert f"disk: at most {human_bytes(checkpoints * size)} of weights at once" in output


def test_a_round_that_would_not_fit_stops_before_training(toy, tmp_path, monkeypatch):
    monkeypatch.setattr(runner.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    result = _run(tmp_path, _fast(toy, tmp_path))
    assert result.exit_code == 1
    (line,) = [ln for ln in result.output.splitlines() if ln.startswith("mot: error:")]
    assert "round 1 needs about" in line and "1000.0 B free" in line
    assert _calls(tmp_path) == []


def test_parallel_branches_run_at_once_after_their_data_is_prepared(toy, tmp_path):
    data = _fast(toy, tmp_path, teachers=("brief", "wordy", "tensfirst"), rounds=1,
                 launch={"parallel": 2})
    result = _run(tmp_path, data)
    assert result.exit_code == 0, result.output
    calls = _calls(tmp_path)
    assert sorted(c for c in calls if c.startswith("prepare/")) == ["prepare/brief", "prepare/tensfirst", "prepare/wordy"]
    spans = [line.split() for line in (tmp_path / "run" / SPANS).read_text().splitlines()]
    events = sorted([(float(start), 1) for _, start, _ in spans] + [(float(end), -1) for _, _, end in spans])
    at_once = max(itertools.accumulate(change for _, change in events))
    assert at_once == 2, f"{at_once} steps ran at once with launch.parallel 2"
    assert (tmp_path / "run/round-01/merge.done.json").is_file()


def test_more_rounds_extend_a_finished_run(toy, tmp_path):
    assert _run(tmp_path, _fast(toy, tmp_path)).exit_code == 0
    assert _run(tmp_path, _fast(toy, tmp_path, rounds=3)).exit_code == 0
    assert _calls(tmp_path)[4:] == ["round-03/branch-brief", "round-03/branch-wordy"]


def test_failed_branch_stops_the_run_keeps_finished_work(toy, tmp_path):
    data = _fast(toy, tmp_path)
    data["mot"]["teachers"][1]["overrides"] = {"learning_rate": 0.0}
    result = _run(tmp_path, data)
    assert result.exit_code == 1
    line = [ln for ln in result.output.splitlines() if ln.startswith("mot: error:")]
    assert len(line) == 1 and "round-01/branch-wordy failed" in line[0]
    assert str(tmp_path / "run/round-01/branch-wordy/train.log") in line[0]
    assert (tmp_path / "run/round-01/branch-brief/done.json").is_file()
    assert not (tmp_path / "run/round-01/merged").exists()

    status = _run(tmp_path, data, "status")
    rows = {ln.split()[0]: ln.split()[1] for ln in status.output.splitlines()}
    assert rows == {"round-01/branch-brief": "done", "round-01/branch-wordy": "failed",
                    "round-01/merge": "pending", "round-02/branch-brief": "pending",
                    "round-02/branch-wordy": "pending", "round-02/merge": "pending"}

    fixed = _run(tmp_path, _fast(toy, tmp_path))
    assert fixed.exit_code == 0
    assert _calls(tmp_path).count("round-01/branch-brief") == 1


def test_two_runs_cannot_share_a_run_dir(toy, tmp_path):
    (tmp_path / "run").mkdir()
    with run_lock(tmp_path / "run"):
        result = _run(tmp_path, _fast(toy, tmp_path))
    assert result.exit_code == 2 and "in use by another mot run" in result.output
    assert _calls(tmp_path) == []


def test_status_shows_results(toy, tmp_path):
    assert _run(tmp_path, _fast(toy, tmp_path)).exit_code == 0
    status = _run(tmp_path, _fast(toy, tmp_path), "status")
    assert status.exit_code == 0
    lines = [ln for ln in status.output.splitlines() if not ln.startswith("    warning: ")]
    assert len(lines) == 6 and all(" done " in ln for ln in lines)
    assert "steps 3, loss" in lines[0]
    summary = json.loads((tmp_path / "run/round-01/summary.json").read_text())
    assert set(summary["steps"]) == {"round-01/branch-brief", "round-01/branch-wordy", "round-01/merge"}


def test_status_of_a_directory_without_a_run(tmp_path):
    result = CliRunner().invoke(main, ["status", str(tmp_path)])
    assert result.exit_code == 2 and "recipe.yaml: not found" in result.output


def test_baselines_and_evaluations_run_and_resume(toy, tmp_path):
    data = _fast(toy, tmp_path, baselines=["single", "union", "oneshot"], eval={"data": str(toy["eval"])})
    first = _run(tmp_path, data)
    assert first.exit_code == 0, first.output
    assert "Report:" in first.output
    ran = _calls(tmp_path)
    assert ran.count("baseline/single-brief") == 1 and "eval/oneshot" in ran and "eval/round-00" in ran
    again = _run(tmp_path, data)
    assert again.exit_code == 0 and _calls(tmp_path) == ran, "a finished run with baselines does nothing again"
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert [r["round"] for r in metrics["mot"]] == [0, 1, 2]
    assert [r["cumulative_branch_steps"] for r in metrics["mot"]] == [0, 6, 12]
    assert set(metrics["baselines"]) == {"single-brief", "single-wordy", "union", "oneshot"}
    assert metrics["baselines"]["oneshot"]["branch_steps"] == 12
    assert all(isinstance(r["accuracy"], float) for r in metrics["mot"])
    oneshot = json.loads((tmp_path / "run/baselines/oneshot/merge.done.json").read_text())["result"]
    assert oneshot["diagnostics"] == json.loads((tmp_path / "run/baselines/oneshot/diagnostics.json").read_text())
    assert set(oneshot["diagnostics"]["relative_update"]) == {"brief", "wordy"}


def test_merge_diagnostics_are_recorded_whichever_plugin_merged(toy, tmp_path):
    result = _run(tmp_path, _fast(toy, tmp_path, rounds=1))
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    done = json.loads((run / "round-01/merge.done.json").read_text())["result"]
    assert done["executor"] == "mean"
    assert done["diagnostics"] == json.loads((run / "round-01/diagnostics.json").read_text())
    diagnostics = done["diagnostics"]
    assert set(diagnostics["relative_update"]) == {"brief", "wordy"}
    assert [(c["a"], c["b"]) for c in diagnostics["cosine"]] == [("brief", "wordy")]
    # the fake launcher shifts every weight by a constant: far outside the averaging regime
    assert diagnostics["relative_update"]["brief"] > 0.05 and diagnostics["warnings"]
    assert f"    round-01/merge: warning: {diagnostics['warnings'][0]}" in result.output.splitlines()

    status = _run(tmp_path, _fast(toy, tmp_path, rounds=1), "status").output.splitlines()
    merge = next(i for i, ln in enumerate(status) if ln.startswith("round-01/merge "))
    assert ", cosine " in status[merge] and "sign disagreement" in status[merge]
    assert status[merge + 1] == f"    warning: {diagnostics['warnings'][0]}"


def test_status_without_a_train_loss(toy, tmp_path):
    assert _run(tmp_path, _fast(toy, tmp_path, rounds=1)).exit_code == 0
    marker = tmp_path / "run/round-01/branch-brief/done.json"
    done = json.loads(marker.read_text())
    done["result"]["final_train_loss"] = None
    marker.write_text(json.dumps(done))
    status = _run(tmp_path, _fast(toy, tmp_path, rounds=1), "status")
    assert status.exit_code == 0 and "steps 3, loss n/a, tokens 0" in status.output


def test_branch_evaluations_run_before_the_branch_weights_go(toy, tmp_path):
    data = _fast(toy, tmp_path, eval={"data": str(toy["eval"]), "branches": True})
    result = _run(tmp_path, data)
    assert result.exit_code == 0, result.output
    teachers = [t["name"] for t in data["mot"]["teachers"]]
    branch_evals = [f"eval/round-{r:02d}-branch-{t}" for r in (1, 2) for t in teachers]
    assert set(branch_evals) <= set(_calls(tmp_path)), "every branch was evaluated (before its weights went)"
    assert not list((tmp_path / "run").glob("round-*/branch-*/model"))
    summary = json.loads((tmp_path / "run/round-01/summary.json").read_text())
    assert set(branch_evals[:2]) <= set(summary["steps"]), "the round ends after its branch evaluations"
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert list(metrics["mot"][1]["branches"]) == teachers and metrics["mot"][1]["merge_gain"] is not None


def test_seeds_run_one_after_another_with_a_combined_report(toy, tmp_path):
    recipe = str(write_recipe(tmp_path / "r.yaml", _fast(toy, tmp_path, rounds=1, eval={"data": str(toy["eval"])})))
    planned = CliRunner().invoke(main, ["plan", recipe, "--seed", "3", "--seed", "5"])
    assert planned.exit_code == 0, planned.output
    assert f"Plan for {tmp_path / 'run/seed-5'}" in planned.output and "--seed 3 --seed 5" in planned.output
    resolved = yaml.safe_load((tmp_path / "run/seed-3/recipe.yaml").read_text())["mot"]
    assert (resolved["seed"], resolved["run_dir"]) == (3, ".")
    assert next((tmp_path / "run/seed-5/round-01").glob("branch-*/axolotl.yaml")).read_text().count("seed: 5") == 1
    result = CliRunner().invoke(main, ["run", recipe, "--seed", "3", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert f"Report over 2 seeds: {tmp_path / 'run/report.md'}" in result.output
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["run_labels"] == ["seed-3", "seed-5"] and len(metrics["mot"][1]["accuracy_per_run"]) == 2
    assert (tmp_path / "run/seed-3/report.md").is_file() and not (tmp_path / "run/recipe.yaml").exists()
    again = CliRunner().invoke(main, ["run", recipe, "--seed", "3", "--seed", "5"])
    assert again.exit_code == 0 and again.output.count("done earlier, skipped") == 2 * 5
