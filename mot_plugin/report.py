"""Metrics of a run, read from its step markers, and the files of its report (input paths shown as
the recipe wrote them, run paths relative to the run directory: `card.Paths`).

Everything is read from the step markers (and the evaluations' `samples.jsonl`) of one or more run
directories; several runs of one recipe with different seeds are combined as mean ± std. The
Markdown is written by `report_md`, the plot by `report_plot`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mot_plugin import choices
from mot_plugin.atomic import read_json, write_json, write_text
from mot_plugin.card import Paths, write_cards
from mot_plugin.jsonl import read_jsonl
from mot_plugin.planner import Plan
from mot_plugin.report_md import render_markdown
from mot_plugin.steps import EvalStep, Step
from mot_plugin.stats import mcnemar_exact, paired_counts, wilson_interval

EVAL_FIELDS = ("accuracy", "accuracy_std", "unextracted", "mean_response_tokens")
TABLES = ("paired", "diagnostics", "training", "candidates", "selection")
"""Per-run tables; combined runs concatenate them, each row naming its run."""
PLOT = "accuracy.png"


def _results(plan: Plan) -> dict[str, dict[str, Any]]:
    """step id -> {"result": ..., "seconds": ...} for every finished step."""
    done = {}
    for step in plan.steps:
        marker = read_json(step.marker_path)
        if marker and marker.get("fingerprint") == step.fingerprint:
            done[step.id] = marker
    return done


def _training(steps: list[Step], done: dict) -> dict[str, Any]:
    """Compute and loss of a group of branch and merge steps."""
    branches = [done[s.id]["result"] for s in steps if s.trains and s.id in done]
    losses = [b["final_train_loss"] for b in branches if b.get("final_train_loss") is not None]
    return {
        "branch_steps": sum(b.get("steps", 0) for b in branches),
        "tokens_trained": sum(b.get("tokens_trained", 0) for b in branches),
        "train_loss": round(statistics.mean(losses), 4) if losses else None,
        "seconds": round(sum(done[s.id]["seconds"] for s in steps if s.id in done), 1),
    }


def _interval(accuracy: float | None, problems: int | None, samples: int | None) -> dict[str, Any]:
    """n = problems x samples answers and the 95% Wilson interval of `accuracy` over them."""
    n = (problems or 0) * (samples or 1)
    ci = wilson_interval(round(accuracy * n), n) if n and accuracy is not None else None
    return {"n": n or None, "ci": [round(v, 4) for v in ci] if ci else None}


def _evaluation(step: Step | None, done: dict) -> dict[str, Any]:
    """An evaluation's numbers, with a 95% Wilson interval over its n = problems x samples answers;
    with `slices` (accuracy, n and interval per tag) when its eval rows carry tags."""
    marker = done.get(step.id) if step else None
    if not marker:
        return {**dict.fromkeys(EVAL_FIELDS), "n": None, "ci": None}
    result = marker["result"]
    row = {k: result.get(k) for k in EVAL_FIELDS}
    row.update(_interval(row["accuracy"], result.get("n_problems"), result.get("n_samples")))
    slices = result.get("slices") or {}
    if slices:
        row["slices"] = {tag: {"accuracy": s["accuracy"], "problems": s["n_problems"],
                               **_interval(s["accuracy"], s["n_problems"], result.get("n_samples"))}
                         for tag, s in slices.items()}
    return row


def _slice_gains(row: dict[str, Any]) -> dict[str, Any]:
    """Per tag: the merged model's accuracy on the slice minus its branches' mean and best."""
    return {tag: _merge_gain(s["accuracy"], {t: (b.get("slices") or {}).get(tag, {"accuracy": None})
                                             for t, b in row["branches"].items()})
            for tag, s in (row.get("slices") or {}).items()}


def _merge_gain(merged: float | None, branches: dict[str, dict]) -> dict[str, Any] | None:
    """The merged model's accuracy minus its branches' mean and best, in points."""
    scores = {t: b["accuracy"] for t, b in branches.items() if b["accuracy"] is not None}
    if merged is None or not scores or len(scores) < len(branches):
        return None
    best = max(scores, key=scores.get)
    return {"vs_mean": round(100 * (merged - statistics.mean(scores.values())), 2),
            "vs_best": round(100 * (merged - scores[best]), 2), "best_branch": best}


@dataclass(frozen=True)
class Verdicts:
    """One evaluation's answers, problem by problem (from its `samples.jsonl`)."""

    right: dict[int, bool]
    """Per problem: right or wrong (the majority of its samples, ties wrong)."""
    majority: bool
    """Whether a majority of several samples was taken."""
    tags: dict[int, list[str]]
    prompts: dict[int, str]


def verdicts(step: Step) -> Verdicts | None:
    """The evaluation's answers problem by problem; None without `samples.jsonl`."""
    path = step.output_dir / "samples.jsonl"
    if not path.is_file():
        return None
    marks: dict[int, list[bool]] = {}
    tags: dict[int, list[str]] = {}
    prompts: dict[int, str] = {}
    for _, row in read_jsonl(path, ValueError):
        if "problem" in row and "correct" in row:
            problem = int(row["problem"])
            marks.setdefault(problem, []).append(bool(row["correct"]))
            tags[problem], prompts[problem] = row.get("tags") or [], row.get("prompt", "")
    return Verdicts({p: 2 * sum(m) > len(m) for p, m in marks.items()}, any(len(m) > 1 for m in marks.values()),
                    tags, prompts)


def _mcnemar(mine: dict[int, bool], theirs: dict[int, bool], problems: list[int]) -> dict[str, Any]:
    """Exact McNemar of two models' verdicts on `problems`."""
    _, b, c, _ = paired_counts([mine[p] for p in problems], [theirs[p] for p in problems])
    return {"problems": len(problems), "b": b, "c": c, "p": mcnemar_exact(b, c)}


def paired_test(mine: Verdicts, theirs: Verdicts) -> dict[str, Any]:
    """Exact McNemar of two evaluations on the problems both answered (b: only `mine` right, c: only
    `theirs`), and (`slices`) on each tag's problems when the eval rows carry tags."""
    problems = sorted(mine.right.keys() & theirs.right.keys())
    test = {**_mcnemar(mine.right, theirs.right, problems), "majority": mine.majority or theirs.majority}
    tags = sorted({t for p in problems for t in mine.tags[p]})
    if tags:
        test["slices"] = {tag: _mcnemar(mine.right, theirs.right, [p for p in problems if tag in mine.tags[p]])
                          for tag in tags}
    return test


def _paired(final: Step, baselines: list[Step], done: dict) -> list[dict[str, Any]]:
    """MoT's final round against each baseline, problem by problem (`paired_test`)."""
    mine = verdicts(final) if final.id in done else None
    rows = []
    for step in baselines:
        theirs = verdicts(step) if step.id in done else None
        if mine and theirs:
            rows.append({"baseline": step.spec.name, "round": final.round, **paired_test(mine, theirs)})
    return rows


def evaluations(plan: Plan) -> dict[str, tuple[Step, dict[str, Any]]]:
    """Every finished evaluation of the run by name (`round-01`, `round-01-branch-brief`, `union`, ...):
    its step and its numbers as the report gives them."""
    done = _results(plan)
    return {s.spec.name: (s, _evaluation(s, done)) for s in plan.steps if isinstance(s, EvalStep) and s.id in done}


def _diagnostics(merges: list[Step], done: dict) -> list[dict[str, Any]]:
    """Each round's merge diagnostics, when the merge recorded them."""
    rows = []
    for step in merges:
        diagnostics = (done.get(step.id) or {}).get("result", {}).get("diagnostics")
        if isinstance(diagnostics, dict):
            rows.append({"round": step.round, **({"candidate": step.spec.candidate} if step.spec.candidate else {}),
                         **diagnostics})
    return rows


def _branch_rows(steps: tuple[Step, ...], done: dict) -> list[dict[str, Any]]:
    """One row per finished branch (MoT and baseline): steps, final loss, tokens, loss curve."""
    rows = []
    for step in steps:
        if not step.trains or step.id not in done:
            continue
        result = done[step.id]["result"]
        rows.append({"round": step.round, "name": step.id.split("/")[-1] if step.baseline else step.spec.teacher.name,
                     "baseline": step.baseline is not None, "steps": result.get("steps"),
                     "final_train_loss": result.get("final_train_loss"),
                     "tokens_trained": result.get("tokens_trained"), "loss_curve": result.get("loss_curve") or []})
    return rows


def collect_metrics(plan: Plan) -> dict[str, Any]:
    """Per round (0 = the student) and per baseline: accuracy and compute, from the markers; the
    branches' accuracies and the merge's gain, paired tests, merge diagnostics and training curves."""
    done = _results(plan)
    mot = plan.recipe.mot
    evals = [s for s in plan.steps if isinstance(s, EvalStep)]
    rounds, round_evals, branch_steps, tokens = [], {}, 0, 0
    for r in range(0, mot.rounds + 1):
        steps = [s for s in plan.steps if s.round == r and s.baseline is None]
        round_evals[r], validation = choices.round_evaluations(plan, r, done)
        training = _training(steps, done)
        branch_steps += training["branch_steps"]
        tokens += training["tokens_trained"]
        row = {"round": r, **_evaluation(round_evals[r], done), **training,
               "cumulative_branch_steps": branch_steps, "cumulative_tokens_trained": tokens}
        if plan.recipe.validation:
            row["validation"] = _evaluation(validation, done)
        branches = {s.spec.teacher: _evaluation(s, done) for s in steps
                    if isinstance(s, EvalStep) and s.spec.role == "branch" and s.on_test_set}
        if branches:
            row.update(branches=branches, merge_gain=_merge_gain(row["accuracy"], branches))
            if row.get("slices"):
                row["slice_merge_gain"] = _slice_gains(row)
        rounds.append(row)
    baselines, baseline_evals = {}, [s for s in evals if s.spec.role == "baseline"]
    for step in baseline_evals:
        model_step = next(s for s in plan.steps if s.id == step.deps[0])
        group = [step, model_step] + [s for s in plan.steps if s.id in model_step.deps]
        baselines[step.spec.name] = {**_evaluation(step, done), **_training(group, done)}
    scored = [row["round"] for row in rounds if row["accuracy"] is not None]
    selection = choices.selection(rounds, mot.select) if plan.recipe.validation else []
    final = next((row["round"] for row in selection if row["used"]), scored[-1] if scored else None)
    return {
        "run_dir": str(plan.recipe.run_dir),
        "student": plan.recipe.student,
        "teachers": [t.name for t in mot.teachers],
        "rounds": mot.rounds,
        "steps_per_round": mot.steps_per_round,
        "seed": mot.seed,
        "merge": (mot.merge.method if not mot.merge.candidates else
                  f"one per round chosen on validation among {', '.join(c.name for c in mot.merge.candidates)}"),
        "merge_executor": ", ".join(dict.fromkeys(merge.executor for _, merge in plan.recipe.merges())),
        "baseline_budget": mot.baseline_budget,
        "eval": mot.eval.model_dump(mode="json") if mot.eval else None,
        "mot": rounds,
        "baselines": baselines,
        "paired": _paired(round_evals[final], baseline_evals, done) if round_evals.get(final) else [],
        "diagnostics": _diagnostics([s for s in plan.steps if s.diagnosed and s.baseline is None], done),
        "training": _branch_rows(plan.steps, done),
        "select": mot.select,
        "candidates": choices.candidate_rows(plan, done, _evaluation),
        "selection": selection,
    }


def _across(entries: list[dict], key: str) -> dict[str, Any]:
    """`key` over runs: its mean, its std across runs and every run's value."""
    per_run = [entry.get(key) for entry in entries]
    values = [v for v in per_run if v is not None]
    mean = statistics.mean(values) if values else None
    std = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
    return {key: mean, f"{key}_std_across_runs": std, f"{key}_per_run": per_run}


def _combined(row: dict[str, Any], same: list[dict]) -> dict[str, Any]:
    """One evaluation's row over runs (`same`: each run's row): its accuracy, and each slice's, as the
    mean and std across runs, every run's value, no interval."""
    row = {**row, **_across(same, "accuracy"), "ci": None}
    if "slices" in row:
        row["slices"] = {tag: {**entry, **_across([(s.get("slices") or {}).get(tag, {}) for s in same], "accuracy"),
                               "ci": None} for tag, entry in row["slices"].items()}
    return row


def _combined_gain(gains: list[dict]) -> dict[str, Any]:
    """Merge gains over runs: mean and std across runs, every run's value."""
    gains = [gain or {} for gain in gains]
    return {**_across(gains, "vs_mean"), **_across(gains, "vs_best")}


def combine(runs: list[dict[str, Any]], run_dir: Path) -> dict[str, Any]:
    """Several runs (seeds) of one recipe: accuracies (overall and per slice) and merge gains as mean
    and std across runs, with every run's value; intervals stay per run; per-run tables name their run."""
    first = runs[0]
    labels = [Path(run["run_dir"]).name for run in runs]
    rows = []
    for i, row in enumerate(first["mot"]):
        same = [run["mot"][i] if i < len(run["mot"]) else {} for run in runs]
        row = _combined(row, same)
        if "branches" in row:
            row["branches"] = {t: _combined(b, [s.get("branches", {}).get(t, {}) for s in same])
                               for t, b in row["branches"].items()}
            row["merge_gain"] = _combined_gain([s.get("merge_gain") for s in same])
        if "slice_merge_gain" in row:
            row["slice_merge_gain"] = {tag: _combined_gain([(s.get("slice_merge_gain") or {}).get(tag) for s in same])
                                       for tag in row["slice_merge_gain"]}
        rows.append(row)
    baselines = {name: _combined(row, [run["baselines"].get(name, {}) for run in runs])
                 for name, row in first["baselines"].items()}
    tables = {key: [{"run": label, **row} for label, run in zip(labels, runs) for row in run.get(key, [])]
              for key in TABLES}
    return {**first, "run_dir": str(run_dir), "runs": [run["run_dir"] for run in runs], "run_labels": labels,
            "seed": [run.get("seed") for run in runs], "mot": rows, "baselines": baselines, **tables}


def write_report(plans: list[Plan], out_dir: Path | None = None) -> Path:
    """Write each run's metrics.json and its merged models' cards; write report.md and accuracy.png
    (combined over the runs when there are several) into `out_dir`, by default the first run's
    directory; `out_dir` gets the combined metrics.json too when it is no run's directory."""
    from mot_plugin.report_plot import render_plot

    metrics = [collect_metrics(plan) for plan in plans]
    run_dirs = [plan.recipe.run_dir for plan in plans]
    for run_dir, run_metrics in zip(run_dirs, metrics):
        write_json(run_dir / "metrics.json", run_metrics)
    out = Path(out_dir) if out_dir else run_dirs[0]
    combined = combine(metrics, out) if len(metrics) > 1 else metrics[0]
    if out not in run_dirs:
        write_json(out / "metrics.json", combined)
    plot = PLOT if render_plot(combined, out / PLOT) else None
    write_text(out / "report.md", render_markdown(Paths(plans[0]).metrics(combined), plot))
    for plan, run_metrics in zip(plans, metrics):
        write_cards(plan, run_metrics)
        choices.record_test_scores(plan, run_metrics)
    return out / "report.md"
