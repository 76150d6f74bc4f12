"""Merge candidates chosen per round on a validation split: the plan, the choice, what is kept and
deleted, resume, the report. Fast: branches by tests/fake_launcher.py (its evaluations make up an
accuracy from the model's weights), merges by the example mean executor; the real Axolotl and
mergekit run in tests/test_e2e.py."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import FAST, recipe_data, write_recipe
from fake_launcher import CALLS
from mot_plugin.builtin import choose
from mot_plugin.cli import main
from mot_plugin.planner import plan_run
from mot_plugin.plugins import plugin_manager
from mot_plugin.recipe import parse_recipe
from mot_plugin.weights import validation_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).parents[1]
MERGEKIT = [{"name": "mean", "method": "linear"},
            {"name": "ties", "method": "ties", "parameters": {"density": 0.5}},
            {"name": "ta", "method": "task_arithmetic", "parameters": {"lambda": 0.5}}]
MEAN = [{"name": "plain"}, {"name": "student-files", "mean": {"files_from": "student"}},
        {"name": "byacc", "weights": "validation"}]
"""Candidates of the fast runs (the example mean executor): two equal averages and a weighted one."""


def _plan(data):
    recipe = parse_recipe(data)
    pm = plugin_manager(recipe.mot.plugins)
    pm.hook.mot_check_recipe(recipe=recipe)
    return plan_run(recipe, pm.hook)


def _data(toy, validation, tmp_path, candidates=MERGEKIT, **mot):
    eval_ = {"data": str(toy["eval"]), "validation": str(validation), "limit": 4}
    return recipe_data(toy, tmp_path / "run", merge={"candidates": candidates}, eval=eval_, **mot)


def _fast(toy, validation, tmp_path, keep_candidates=False, **mot):
    data = _data(toy, validation, tmp_path, candidates=MEAN, plugins=FAST["plugins"], **mot)
    data["mot"]["merge"].update(FAST["merge"], keep_candidates=keep_candidates)
    return data


def _run(tmp_path, data, command="run"):
    recipe = write_recipe(tmp_path / "r.yaml", data)
    target = str(recipe) if command in ("run", "plan") else str(tmp_path / "run")
    return CliRunner().invoke(main, [command, target])


def _calls(tmp_path) -> list[str]:
    return (tmp_path / "run" / CALLS).read_text().splitlines()


def _steps(plan):
    return [(s.id, s.kind, s.config_path.name, s.config, s.fingerprint, s.deps) for s in plan.steps]


@pytest.mark.parametrize("merge", [{"method": "linear"}, {"method": "ties", "parameters": {"density": 0.5}}])
def test_one_candidate_is_the_merge(toy, validation, tmp_path, merge):
    """The same steps, configs, paths and fingerprints as the `merge:` block alone: today's run."""
    for eval_ in (None, {"data": str(toy["eval"]), "validation": str(validation)}):
        extra = {"eval": eval_} if eval_ else {}
        alone = _plan(recipe_data(toy, tmp_path / "run", merge=merge, **extra))
        one = _plan(recipe_data(toy, tmp_path / "run", merge={"candidates": [merge]}, **extra))
        assert _steps(one) == _steps(alone)
        assert [s.config_path for s in one.steps if s.kind == "merge"] == [tmp_path / f"run/round-0{r}/merge.yaml"
                                                                          for r in (1, 2)]


def test_each_round_merges_every_candidate_and_chooses_on_validation(toy, validation, tmp_path):
    plan = _plan(_data(toy, validation, tmp_path))
    run = tmp_path / "run"
    ids = [s.id for s in plan.steps]
    for r in (1, 2):
        merges = [s for s in plan.steps if s.kind == "merge" and s.round == r]
        assert [m.id for m in merges] == [f"round-0{r}/candidate-{n}" for n in ("mean", "ties", "ta")]
        assert [m.config["merge_method"] for m in merges] == ["linear", "ties", "task_arithmetic"]
        assert merges[1].config["parameters"] == {"density": 0.5} and merges[2].config["parameters"] == {"lambda": 0.5}
        assert [m.config_path for m in merges] == [run / f"round-0{r}/candidate-{n}/merge.yaml" for n in ("mean", "ties", "ta")]
        (chooser,) = [s for s in plan.steps if s.kind == "choose" and s.round == r]
        assert chooser.output_dir == run / f"round-0{r}/merged" and chooser.ends_round
        assert [c["validation"] for c in chooser.config["candidates"]] == [
            str(run / f"eval/validation/round-0{r}-candidate-{n}/done.json") for n in ("mean", "ties", "ta")]
        assert [c["merged"] for c in chooser.config["candidates"]] == [str(m.output_dir) for m in merges]
        assert set(chooser.deps) == {m.id for m in merges} | {f"eval/validation/round-0{r}-candidate-{n}"
                                                             for n in ("mean", "ties", "ta")}
    # round 2 starts from round 1's choice; the ties merge of round 2 takes it as its base model
    branch = next(s for s in plan.steps if s.id == "round-02/branch-brief")
    assert branch.config["base_model"] == str(run / "round-01/merged") and "round-01/choose" in branch.deps
    assert next(s for s in plan.steps if s.id == "round-02/candidate-ties").config["base_model"] == str(run / "round-01/merged")
    # the test set is read last: every evaluation on it after the last choice, and waiting for it
    tests = [s for s in plan.steps if s.kind == "eval" and s.spec.split == "test"]
    assert {s.id for s in tests} == {"eval/round-00"} | {f"eval/round-0{r}-candidate-{n}" for r in (1, 2)
                                                          for n in ("mean", "ties", "ta")}
    assert min(ids.index(s.id) for s in tests) > ids.index("round-02/choose")
    assert all("round-02/choose" in s.deps for s in tests)
    assert all(s.config["data"] == str(validation) for s in plan.steps if s.kind == "eval" and s.spec.split == "validation")
    assert plan.final_student() == run / "round-02/merged"
    # a candidate's weights go once nothing reads them (unless kept); the disk estimate holds them till then
    assert all(plan.prunable(s) for s in plan.steps if s.kind == "merge")
    size = sum(f.stat().st_size for f in toy["student"].glob("*.safetensors"))
    kept = _plan(_data(toy, validation, tmp_path, candidates=[*MERGEKIT[:2], {**MERGEKIT[2], "out_dtype": "float32"}]))
    assert kept.disk_estimate(size) == 8 * size  # 6 candidates held for the final evaluation + 2 branches


def test_a_changed_candidate_reruns_itself_and_what_follows(toy, validation, tmp_path):
    before = {s.id: s.fingerprint for s in _plan(_data(toy, validation, tmp_path)).steps}
    changed = [*MERGEKIT[:2], {**MERGEKIT[2], "parameters": {"lambda": 0.7}}]
    after = {s.id: s.fingerprint for s in _plan(_data(toy, validation, tmp_path, candidates=changed)).steps}
    assert sorted(k for k in before if before[k] != after[k]) == sorted([
        "round-01/candidate-ta", "eval/validation/round-01-candidate-ta", "eval/round-01-candidate-ta",
        "round-01/choose", *(k for k in before if k.startswith(("round-02", "eval/validation/round-02", "eval/round-02")))])


def test_plan_lists_candidates_and_their_cost(toy, validation, tmp_path):
    result = _run(tmp_path, _data(toy, validation, tmp_path), "plan")
    assert result.exit_code == 0, result.output
    assert ("merge candidates, one chosen per round on validation: mean (mergekit linear); ties (mergekit ties "
            "(density 0.5)); ta (mergekit task_arithmetic (lambda 0.5))") in result.output
    assert "each round: 3 merges instead of 1, 3 evaluations on validation, 3 on the test set (for the report)" in result.output
    assert "final model (mot.select: last): the last round's student" in result.output
    assert re.search(r"^  round-01/choose +pending ", result.output, flags=re.M)
    resolved = yaml.safe_load((tmp_path / "run/recipe.yaml").read_text())["mot"]["merge"]["candidates"]
    assert [c["name"] for c in resolved] == ["mean", "ties", "ta"] and all(c["dtype"] == "float32" for c in resolved)


def test_a_candidate_inherits_the_merge_block(toy, validation, tmp_path):
    data = _data(toy, validation, tmp_path, candidates=[{"method": "linear"}, {"method": "ties"}])
    data["mot"]["merge"].update(dtype="float64", parameters={"density": 0.7})
    data["mot"]["merge"]["candidates"][0]["parameters"] = {}
    plan = _plan(data)
    merges = {s.id: s.config for s in plan.steps if s.kind == "merge" and s.round == 1}
    assert merges["round-01/candidate-linear"]["dtype"] == merges["round-01/candidate-ties"]["dtype"] == "float64"
    assert "parameters" not in merges["round-01/candidate-linear"]
    assert merges["round-01/candidate-ties"]["parameters"] == {"density": 0.7}


def test_validation_weights():
    assert validation_weights({"a": 1.0, "b": 1.0}, {"a": 0.6, "b": 0.2}) == {"a": 1.5, "b": 0.5}
    assert validation_weights({"a": 2.0, "b": 1.0}, {"a": 0.5, "b": 0.5}) == {"a": 2.0, "b": 1.0}
    assert validation_weights({"a": 1.0, "b": 1.0}, {"a": 0.0, "b": 0.0}) == {"a": 1.0, "b": 1.0}


def test_the_choice_is_the_best_on_validation_and_the_test_set_is_read_last(toy, validation, tmp_path):
    data = _fast(toy, validation, tmp_path, keep_candidates=True)
    result = _run(tmp_path, data)
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    calls = _calls(tmp_path)
    for r in (1, 2):
        scores = {n: json.loads((run / f"eval/validation/round-0{r}-candidate-{n}/done.json").read_text())
                  ["result"]["accuracy"] for n in ("plain", "student-files", "byacc")}
        choice = json.loads((run / f"round-0{r}/choose.done.json").read_text())["result"]
        assert choice["validation"] == scores
        assert choice["chosen"] == max(scores, key=scores.get)  # the first of equals
        # the round's student is the chosen candidate's files, hard-linked
        for name in ("model.safetensors", "config.json"):
            assert os.path.samefile(run / f"round-0{r}/merged/{name}",
                                    run / f"round-0{r}/candidate-{choice['chosen']}/merged/{name}")
        summary = json.loads((run / f"round-0{r}/summary.json").read_text())
        assert summary["steps"][f"round-0{r}/choose"]["chosen"] == choice["chosen"]
        assert [(c["name"], c["validation"], c["chosen"]) for c in summary["candidates"]] == [
            (n, s, n == choice["chosen"]) for n, s in scores.items()]
        assert all(c["test"] is not None for c in summary["candidates"])
    # the equal averages tie in every round: the first listed wins; the weighted one records its weights
    assert json.loads((run / "round-01/choose.done.json").read_text())["result"]["chosen"] != "student-files"
    byacc = json.loads((run / "round-01/candidate-byacc/merge.done.json").read_text())["result"]
    branches = {t: json.loads((run / f"eval/validation/round-01-branch-{t}/done.json").read_text())["result"]["accuracy"]
                for t in ("brief", "wordy")}
    assert byacc["weights"] == validation_weights({"brief": 1.0, "wordy": 1.0}, branches)
    resolved = yaml.safe_load((run / "round-01/candidate-byacc/merge.yaml").read_text())
    assert [m["weight"] for m in resolved["models"]] == list(byacc["weights"].values())
    assert "mot_weights" in yaml.safe_load((run / "round-01/candidate-byacc/merge.template.yaml").read_text())
    # no evaluation read the test set before the last choice was made
    tests = [i for i, call in enumerate(calls) if call.startswith("eval/") and not call.startswith("eval/validation/")]
    assert len(tests) == 7 and min(tests) > max(i for i, c in enumerate(calls) if c.startswith("eval/validation/"))
    chosen_at = (run / "round-02/choose.done.json").stat().st_mtime
    assert all((run / calls[i] / "done.json").stat().st_mtime > chosen_at for i in tests)
    # the report: a table per round, both rules for the final model, the chosen candidates' test numbers
    metrics = json.loads((run / "metrics.json").read_text())
    assert [(c["round"], c["candidate"]) for c in metrics["candidates"]] == [
        (r, n) for r in (1, 2) for n in ("plain", "student-files", "byacc")]
    for row in metrics["mot"][1:]:
        chosen = next(c for c in metrics["candidates"] if c["round"] == row["round"] and c["chosen"])
        assert row["accuracy"] == chosen["test"]["accuracy"] and row["validation"] == chosen["validation"]
    assert [(s["rule"], s["used"]) for s in metrics["selection"]] == [("last", True), ("validation", False)]
    report = (run / "report.md").read_text()
    assert "## Merge candidates, chosen on validation" in report and report.count("| candidate | merge |") == 2
    assert "## The final model" in report and "| the last round's student (used) | 2 |" in report
    card = (run / "round-01/merged/README.md").read_text()
    assert f"- merge: candidate {json.loads((run / 'round-01/choose.done.json').read_text())['result']['chosen']}" in card
    # a finished run does nothing again
    again = _run(tmp_path, data)
    assert again.exit_code == 0 and _calls(tmp_path) == calls


def test_losers_are_deleted_after_the_choice_and_their_test_evaluation(toy, validation, tmp_path):
    result = _run(tmp_path, _fast(toy, validation, tmp_path, select="validation"))
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    assert not list(run.glob("round-*/candidate-*/merged")) and not list(run.glob("round-*/branch-*/model"))
    assert all((run / f"round-0{r}/merged/model.safetensors").is_file() for r in (1, 2))
    status = _run(tmp_path, _fast(toy, validation, tmp_path, select="validation"), "status").output
    assert status.count("weights deleted after the choice") == 6
    assert re.search(r"round-01/choose +done .*chose \S+ \(validation: plain [\d.]+%, student-files", status)
    metrics = json.loads((run / "metrics.json").read_text())
    best = max(metrics["mot"][1:], key=lambda row: row["validation"]["accuracy"])
    assert next(s for s in metrics["selection"] if s["used"])["round"] == best["round"]
    assert f"Final student (mot.select: validation, round {best['round']}): {run}/round-0{best['round']}/merged" \
        in result.output
    assert "chosen on validation by mot.select" in (run / "report.md").read_text()


def test_a_failed_choice_resumes_without_redoing_the_merges(toy, validation, tmp_path, monkeypatch):
    data = _fast(toy, validation, tmp_path, rounds=1)
    linking = choose.link_tree
    monkeypatch.setattr(choose, "link_tree", lambda *a: (_ for _ in ()).throw(OSError("disk gone")))
    failed = _run(tmp_path, data)
    assert failed.exit_code == 1 and (tmp_path / "run/round-01/choose.failed.json").is_file()
    assert "mot: error: round-01/choose failed:" in failed.output and "disk gone" in failed.output
    ran = _calls(tmp_path)
    monkeypatch.setattr(choose, "link_tree", linking)
    result = _run(tmp_path, data)
    assert result.exit_code == 0, result.output
    assert [c for c in _calls(tmp_path)[len(ran):] if not c.startswith("eval/")] == []
    assert "candidate-plain: done earlier, skipped" in result.output and "round-01/choose: running" in result.output
    assert (tmp_path / "run/round-01/merged/model.safetensors").is_file()


def test_a_lost_round_student_is_chosen_again(toy, validation, tmp_path):
    data = _fast(toy, validation, tmp_path, rounds=1)
    assert _run(tmp_path, data).exit_code == 0
    before = json.loads((tmp_path / "run/round-01/choose.done.json").read_text())["result"]["chosen"]
    ran = len(_calls(tmp_path))
    for path in sorted((tmp_path / "run/round-01/merged").iterdir()):
        path.unlink()
    (tmp_path / "run/round-01/merged").rmdir()
    result = _run(tmp_path, data)
    assert result.exit_code == 0, result.output
    # the pruned candidates (and their pruned branches) are made again to choose from
    assert "round-01/branch-brief" in _calls(tmp_path)[ran:] and "round-01/candidate-plain: running" in result.output
    assert json.loads((tmp_path / "run/round-01/choose.done.json").read_text())["result"]["chosen"] == before


def test_the_plugins_doc_candidates_plan(toy, validation, tmp_path):
    """docs/plugins.md: a candidate naming a registered merge executor, next to a mergekit method."""
    text = (ROOT / "docs/plugins.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S) if "candidates" in b]
    mot = yaml.safe_load(block)["mot"]
    mot["eval"] = {"data": str(toy["eval"]), "validation": str(validation)}
    data = recipe_data(toy, tmp_path / "run", **mot)
    merges = [s for s in _plan(data).steps if s.kind == "merge" and s.round == 1]
    assert [m.config.get("executor") for m in merges] == ["mean", None]
    assert merges[0].config["files_from"] == str(toy["student"]) and merges[1].config["merge_method"] == "ties"
