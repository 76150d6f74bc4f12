"""The report on synthetic markers: intervals, paired tests, merge gains, the wording of the
summary, diagnostics, loss curves, and several seeds combined. Nothing is trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import recipe_data, write_recipe
from mot_plugin.atomic import write_json
from mot_plugin.cli import main
from mot_plugin.evaluate import accuracy, score_slices
from mot_plugin.planner import plan_run
from mot_plugin.plugins import plugin_manager
from mot_plugin.recipe import parse_recipe, with_seed
from mot_plugin.report import write_report
from mot_plugin.stats import mcnemar_exact, paired_counts, wilson_interval

DIAGNOSTICS = {"relative_update": {"a": 0.031, "b": 0.042}, "relative_update_by_kind": {}, "cosine": [],
               "mean_cosine": 0.215, "sign_disagreement": 0.4, "merged_relative_update": 0.025,
               "warnings": ["branches moved far apart"]}


def test_wilson_interval():
    low, high = wilson_interval(189, 300)
    assert (round(100 * low, 1), round(100 * high, 1)) == (57.4, 68.3)
    assert wilson_interval(0, 10)[0] == 0.0 and round(wilson_interval(0, 10)[1], 4) == 0.2775
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_mcnemar_exact_and_paired_counts():
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(1, 9) == mcnemar_exact(9, 1) == pytest.approx(2 * 11 / 1024)
    assert paired_counts([True, True, False, False, True], [True, False, True, False, False]) == (1, 2, 1, 1)


def _plan(toy, run_dir: Path, seed: int | None = None, **mot):
    data = recipe_data(toy, run_dir, rounds=1, **{"eval": {"data": str(toy["eval"])}, **mot})
    recipe = parse_recipe(data)
    return plan_run(recipe if seed is None else with_seed(recipe, seed), plugin_manager().hook)


def _step(plan, step_id: str):
    return next(s for s in plan.steps if s.id == step_id)


def _finish(step, result: dict) -> None:
    write_json(step.marker_path, {"fingerprint": step.fingerprint, "seconds": 1.0, "result": result})


def _evaluated(step, verdicts: list, tags: list[list[str]] | None = None) -> None:
    """A finished evaluation: one verdict per problem (greedy), or a list of verdicts (samples); with
    `tags` (per problem), scored per slice as `evaluate` scores them."""
    samples = [v if isinstance(v, list) else [v] for v in verdicts]
    tags = tags or [[] for _ in samples]
    rows = [{"problem": p, "sample": k, "tags": tags[p], "correct": c}
            for p, marks in enumerate(samples) for k, c in enumerate(marks)]
    step.output_dir.mkdir(parents=True, exist_ok=True)
    (step.output_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    slices = {tag: s.model_dump() for tag, s in score_slices(tags, samples).items()}
    _finish(step, {"accuracy": accuracy(samples), "accuracy_std": 0.0, "unextracted": 0, "mean_response_tokens": 12.0,
                   "n_problems": len(samples), "n_samples": len(samples[0]), "slices": slices})


def _right(count: int, of: int = 20, first: int = 0) -> list[bool]:
    return [first <= p < first + count for p in range(of)]


def _finished_run(plan, evals: dict[str, list], diagnostics: dict | None = None,
                  tags: list[list[str]] | None = None) -> None:
    """Every branch and merge finished (with loss curves); `evals`: eval step id -> verdicts (with
    `tags`: each problem's tags)."""
    for step in plan.steps:
        if step.kind == "branch":
            curve = [[s, 2.0 / s] for s in range(1, step.spec.max_steps + 1)]
            _finish(step, {"steps": step.spec.max_steps, "final_train_loss": curve[-1][1], "tokens_trained": 100,
                           "loss_curve": curve})
        elif step.kind == "merge":
            _finish(step, {"merged": str(step.output_dir), **({"diagnostics": diagnostics} if diagnostics else {})})
    for step_id, verdicts in evals.items():
        _evaluated(_step(plan, step_id), verdicts, tags)


def _scores(plan, mot_final: list, single: list, branches: tuple[list, list] | None = None) -> dict[str, list]:
    first, second = plan.recipe.mot.teachers[:2]
    evals = {"eval/round-00": _right(1), "eval/round-01": mot_final,
             f"eval/single-{first.name}": single, f"eval/single-{second.name}": _right(5)}
    if branches:
        evals[f"eval/round-01-branch-{first.name}"], evals[f"eval/round-01-branch-{second.name}"] = branches
    return evals


def test_intervals_paired_test_and_overlap_wording(toy, tmp_path):
    plan = _plan(toy, tmp_path / "run", baselines=["single"])
    first = plan.recipe.mot.teachers[0].name
    # MoT right on problems 0-9; the single baseline on 0-8 and 10-15: b = 1, c = 6
    _finished_run(plan, _scores(plan, _right(10), _right(9, of=9) + [False] + _right(6, of=10)))
    report = write_report([plan]).read_text()
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    final = metrics["mot"][1]
    assert final["n"] == 20 and final["ci"] == [round(v, 4) for v in wilson_interval(10, 20)]
    assert "| 1 | 50.0% [29.9, 70.1] |" in report
    single = metrics["baselines"][f"single-{first}"]
    assert single["accuracy"] == 0.75 and f"| single-{first} | 75.0% [53.1, 88.8] |" in report
    paired = {p["baseline"]: p for p in metrics["paired"]}[f"single-{first}"]
    assert (paired["b"], paired["c"], paired["problems"], paired["majority"]) == (1, 6, 20, False)
    assert paired["p"] == pytest.approx(mcnemar_exact(1, 6), abs=1e-4)
    assert f"| single-{first} | 1 | 20 | 1 | 6 | 0.12 |" in report
    summary = report.split("## Summary")[1]
    assert "best" not in summary
    assert (f"- single-{first} is the highest baseline at 75.0% [53.1, 88.8] with 3 branch-steps, 25.0 points above "
            "MoT's final round; the 95% intervals overlap, McNemar p=0.12 (b=1, c=6): no significant difference"
            ) in summary


def test_a_clear_difference_is_called_significant(toy, tmp_path):
    plan = _plan(toy, tmp_path / "run", baselines=["single"])
    _finished_run(plan, _scores(plan, _right(18), _right(2)))
    summary = write_report([plan]).read_text().split("## Summary")[1]
    assert "MoT's final round is 65.0 points above the highest baseline" in summary
    assert "the 95% intervals do not overlap, McNemar p=0.00024 (b=13, c=0): significant at the 5% level" in summary


def test_several_samples_are_paired_by_majority(toy, tmp_path):
    plan = _plan(toy, tmp_path / "run", baselines=["single"])
    first = plan.recipe.mot.teachers[0].name
    # 3 samples a problem: MoT's majority right on problems 0-1, the baseline's on 0 only
    mot = [[True, True, False], [True, False, True], [True, False, False], [False, False, False]]
    single = [[True, True, True], [False, False, True], [False, True, True], [False, False, False]]
    _finished_run(plan, {"eval/round-01": mot, f"eval/single-{first}": single})
    report = write_report([plan]).read_text()
    paired = json.loads((tmp_path / "run/metrics.json").read_text())["paired"]
    assert [(p["b"], p["c"], p["majority"]) for p in paired] == [(1, 1, True)]
    assert "a problem counts as right when most of its samples are" in report
    assert json.loads((tmp_path / "run/metrics.json").read_text())["mot"][1]["n"] == 12


def test_merge_gain_and_diagnostics(toy, tmp_path):
    plan = _plan(toy, tmp_path / "run", baselines=["single"], eval={"data": str(toy["eval"]), "branches": True})
    teachers = [t.name for t in plan.recipe.mot.teachers]
    # branches 40% and 60%, merged 55%: +5.0 over the mean, -5.0 against the best
    _finished_run(plan, _scores(plan, _right(11), _right(5), (_right(8), _right(12))), DIAGNOSTICS)
    report = write_report([plan]).read_text()
    row = json.loads((tmp_path / "run/metrics.json").read_text())["mot"][1]
    assert {t: b["accuracy"] for t, b in row["branches"].items()} == {teachers[0]: 0.4, teachers[1]: 0.6}
    assert row["merge_gain"] == {"vs_mean": 5.0, "vs_best": -5.0, "best_branch": teachers[1]}
    assert "| 1 | 40.0% [21.9, 61.3] | 60.0% [38.7, 78.1] | 55.0% [34.2, 74.2] | +5.0 | -5.0 |" in report
    assert "the merge beat the mean of its branches in 1 of 1 rounds and the best branch in 0" in report
    assert "| 1 | 3.10–4.20% | 0.215 | 40.0% | 2.50% | branches moved far apart |" in report
    assert "round-01-branch" not in "".join(json.loads((tmp_path / "run/metrics.json").read_text())["baselines"])


def test_no_diagnostics_no_section(toy, tmp_path):
    plan = _plan(toy, tmp_path / "run")
    _finished_run(plan, {"eval/round-00": _right(1), "eval/round-01": _right(5)})
    assert "## Merge diagnostics" not in write_report([plan]).read_text()


TAGS = [["skill"]] * 10 + [["kept"]] * 10
"""Problems 0-9 need the skill, 10-19 do not."""


def _acc(right: int, of: int) -> str:
    """An accuracy with its 95% interval, as the report writes it."""
    low, high = wilson_interval(right, of)
    return f"{100 * right / of:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def _sliced_scores(plan, final_skill: int, single_skill: int, single_kept: int) -> dict[str, list]:
    """The student solves only `kept` problems; the final round `final_skill` skill problems and every kept
    one; the branches 8 + 5 and 6 + 10; the first single baseline `single_skill` + `single_kept`."""
    def right(skill: int, kept: int) -> list[bool]:
        return _right(skill, of=10) + _right(kept, of=10)

    return _scores(plan, right(final_skill, 10), right(single_skill, single_kept), (right(8, 5), right(6, 10))) | {
        "eval/round-00": right(0, 10)}


def test_accuracy_paired_tests_and_merge_gain_by_slice(toy, tmp_path):
    plan = _plan(toy, tmp_path / "run", baselines=["single"], eval={"data": str(toy["eval"]), "branches": True})
    first, second = (t.name for t in plan.recipe.mot.teachers)
    _finished_run(plan, _sliced_scores(plan, 5, 10, 2), tags=TAGS)
    for step in plan.steps:
        if step.kind == "merge":
            step.output_dir.mkdir(parents=True)
    write_recipe(plan.recipe.run_dir / "recipe.yaml", plan.recipe.to_dict())
    report = write_report([plan]).read_text()
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    final = metrics["mot"][1]
    assert final["slices"] == {"kept": {"accuracy": 1.0, "problems": 10, "n": 10, "ci": [0.7225, 1.0]},
                               "skill": {"accuracy": 0.5, "problems": 10, "n": 10,
                                         "ci": [round(v, 4) for v in wilson_interval(5, 10)]}}
    assert metrics["mot"][0]["slices"]["skill"]["accuracy"] == 0.0
    assert metrics["baselines"][f"single-{first}"]["slices"]["kept"]["accuracy"] == 0.2
    assert final["branches"][first]["slices"]["skill"]["accuracy"] == 0.8
    # skill: merged 50% against branches 80% and 60%; kept: 100% against 50% and 100%
    assert final["slice_merge_gain"] == {"kept": {"vs_mean": 25.0, "vs_best": 0.0, "best_branch": second},
                                         "skill": {"vs_mean": -20.0, "vs_best": -30.0, "best_branch": first}}
    paired = {p["baseline"]: p for p in metrics["paired"]}[f"single-{first}"]
    assert paired["slices"] == {"kept": {"problems": 10, "b": 8, "c": 0, "p": mcnemar_exact(8, 0)},
                                "skill": {"problems": 10, "b": 0, "c": 5, "p": mcnemar_exact(0, 5)}}

    section = report.split("## Accuracy by slice")[1]
    assert "| model | all | kept (10 problems) | skill (10 problems) |" in section
    assert f"| student (round 0) | {_acc(10, 20)} | {_acc(10, 10)} | {_acc(0, 10)} |" in section
    assert f"| round 1 branch {first} | {_acc(13, 20)} | {_acc(5, 10)} | {_acc(8, 10)} |" in section
    assert f"| round 1 merged | {_acc(15, 20)} | {_acc(10, 10)} | {_acc(5, 10)} |" in section
    assert f"| baseline single-{first} | {_acc(12, 20)} | {_acc(2, 10)} | {_acc(10, 10)} |" in section
    assert f"| 1 | skill | {_acc(8, 10)} | {_acc(6, 10)} | {_acc(5, 10)} | -20.0 | -30.0 |" in section
    assert f"| single-{first} | kept | 10 | 8 | 0 | 0.0078 |" in report
    summary = report.split("## Summary")[1]
    assert (f"- on slice `kept`: MoT's final round {_acc(10, 10)}, single-{first} {_acc(2, 10)}; the 95% intervals "
            "do not overlap, McNemar p=0.0078 (b=8, c=0): significant at the 5% level") in summary
    assert f"- on slice `skill`: MoT's final round {_acc(5, 10)}, single-{first} {_acc(10, 10)}; the 95% " in summary
    assert "- on slice `skill`, the merge beat the mean of its branches in 0 of 1 rounds and the best branch in 0" in summary

    card = (plan.recipe.run_dir / "round-01/merged/README.md").read_text()
    assert "## Accuracy by slice" in card and f"| {first} | 3 | 0.6667 | 100 | 65.0% (kept 50.0%, skill 80.0%) |" in card
    assert "name: accuracy on skill" in card and "value: 0.5" in card


def test_no_tags_no_slices(toy, tmp_path):
    plan = _plan(toy, tmp_path / "run", baselines=["single"], eval={"data": str(toy["eval"]), "branches": True})
    _finished_run(plan, _scores(plan, _right(11), _right(5), (_right(8), _right(12))))
    report = write_report([plan]).read_text()
    metrics = (tmp_path / "run/metrics.json").read_text()
    assert "slice" not in report and '"slices"' not in metrics and '"slice_merge_gain"' not in metrics


def test_training_rows_and_loss_panel(toy, tmp_path):
    import matplotlib.image

    plan = _plan(toy, tmp_path / "run", baselines=["single"])
    _finished_run(plan, _scores(plan, _right(10), _right(12)))
    report = write_report([plan]).read_text()
    first = plan.recipe.mot.teachers[0].name
    assert f"| 1 | {first} | 3 | 0.6667 | 100 |" in report
    assert f"| baseline | single-{first} | 3 | 0.6667 | 100 |" in report
    training = json.loads((tmp_path / "run/metrics.json").read_text())["training"]
    assert training[0]["loss_curve"] == [[1, 2.0], [2, 1.0], [3, 2.0 / 3]]
    pixels = matplotlib.image.imread(tmp_path / "run/accuracy.png")
    assert pixels.shape[1] > 1.8 * pixels.shape[0] and pixels.std() > 0.05, "two panels, drawn"


def test_loss_panel_without_evaluations(toy, tmp_path):
    recipe = parse_recipe(recipe_data(toy, tmp_path / "run", rounds=2))
    plan = plan_run(recipe, plugin_manager().hook)
    _finished_run(plan, {})
    write_report([plan])
    assert (tmp_path / "run/accuracy.png").stat().st_size > 1000


def _seed_runs(toy, tmp_path, finals: list[int], tags: list[list[str]] | None = None) -> list:
    plans = []
    for seed, final in enumerate(finals):
        plan = _plan(toy, tmp_path / "run", seed=seed, baselines=["single"],
                     eval={"data": str(toy["eval"]), "branches": True})
        _finished_run(plan, _scores(plan, _right(final), _right(10), (_right(8), _right(final - 2))), DIAGNOSTICS,
                      tags)
        plans.append(plan)
    return plans


def test_seeds_combine_with_every_brief(toy, tmp_path):
    plans = _seed_runs(toy, tmp_path, [10, 14])
    report = write_report(plans, tmp_path / "run").read_text()
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["run_labels"] == ["seed-0", "seed-1"] and metrics["seed"] == [0, 1]
    final = metrics["mot"][1]
    assert final["accuracy"] == pytest.approx(0.6) and final["accuracy_per_run"] == [0.5, 0.7]
    assert final["accuracy_std_across_runs"] == pytest.approx(0.1414, abs=1e-4) and final["ci"] is None
    # merged minus the mean branch: 10 - 8 and 14 - 10 problems of 20
    assert final["merge_gain"]["vs_mean_per_run"] == [10.0, 20.0] and final["merge_gain"]["vs_mean"] == 15.0
    assert "| 1 | 60.0% ± 14.1 (50.0, 70.0) |" in report
    assert "+15.0 ± 7.1 (+10.0, +20.0)" in report
    assert [p["run"] for p in metrics["paired"]] == ["seed-0", "seed-0", "seed-1", "seed-1"]
    first = plans[0].recipe.mot.teachers[0].name
    assert f"| seed-1 | 1 | {first} | 3 |" in report and "| seed-0 | 1 | 3.10–4.20% |" in report
    assert "McNemar p per run:" in report and "mean ± std ranges across runs" in report
    assert (tmp_path / "run/accuracy.png").is_file()
    for seed in ("seed-0", "seed-1"):  # each run keeps its own metrics
        assert json.loads((tmp_path / "run" / seed / "metrics.json").read_text())["mot"][1]["ci"]


def test_mot_report_and_status_understand_seed_directories(toy, tmp_path):
    plans = _seed_runs(toy, tmp_path, [10, 14])
    for plan in plans:
        write_recipe(plan.recipe.run_dir / "recipe.yaml", plan.recipe.to_dict())
    result = CliRunner().invoke(main, ["report", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert f"Report: {tmp_path / 'run/report.md'}" in result.output
    assert "2 runs (seed-0, seed-1)" in (tmp_path / "run/report.md").read_text()
    assert "50.0% [29.9, 70.1]" in (tmp_path / "run/seed-0/report.md").read_text()
    status = CliRunner().invoke(main, ["status", str(tmp_path / "run/seed-1")])
    assert status.exit_code == 0 and "eval/round-01-branch-" in status.output
    parent = CliRunner().invoke(main, ["status", str(tmp_path / "run")])
    assert parent.exit_code == 2 and "several seeds, e.g." in parent.output


def test_seeds_combine_every_slice(toy, tmp_path):
    plans = _seed_runs(toy, tmp_path, [10, 14], TAGS)  # the final round: 10 of 10 skill problems, then 10 + 4 kept
    report = write_report(plans, tmp_path / "run").read_text()
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    final = metrics["mot"][1]
    assert final["slices"]["skill"]["accuracy_per_run"] == [1.0, 1.0]
    assert final["slices"]["kept"]["accuracy_per_run"] == [0.0, 0.4] and final["slices"]["kept"]["ci"] is None
    assert final["slices"]["kept"]["accuracy_std_across_runs"] == pytest.approx(0.2828, abs=1e-4)
    first = plans[0].recipe.mot.teachers[0].name
    assert final["branches"][first]["slices"]["skill"]["accuracy_per_run"] == [0.8, 0.8]
    assert final["slice_merge_gain"]["kept"]["vs_mean_per_run"] == [0.0, 30.0]
    assert "| round 1 merged | 60.0% ± 14.1 (50.0, 70.0) | 20.0% ± 28.3 (0.0, 40.0) | 100.0% ± 0.0 (100.0, 100.0) |" in report
    assert [(p["run"], p["slice"]) for p in [{"run": r["run"], "slice": t} for r in metrics["paired"]
                                              for t in r["slices"]]][:2] == [("seed-0", "kept"), ("seed-0", "skill")]
    assert f"| seed-1 | single-{first} | kept | 10 |" in report
    assert "- on slice `kept`: MoT's final round 20.0% ± 28.3 (0.0, 40.0)" in report
