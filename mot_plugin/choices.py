"""Choices made on the validation split, as `mot plan` and the report show them: each round's merge
candidates (merged, evaluated on validation, the best continuing: `mot_plugin.builtin.choose`) and
the run's final model (`mot.select`: the last round, or the round best on validation).

Test accuracies of candidates and rounds are read here for the report only; no choice reads them
(with a validation split, every evaluation on the test set runs at the end of the run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from mot_plugin.atomic import read_json, write_json
from mot_plugin.planner import Plan
from mot_plugin.recipe import Merge
from mot_plugin.steps import ChooseStep, EvalStep, Step

RULES = {"last": "the last round's student", "validation": "the student of the round best on validation"}
"""`mot.select`'s rules, as the report names them."""


def merge_label(merge: Merge) -> str:
    """`mergekit ties (density 0.5)`, `mergekit linear, weights: validation`."""
    parameters = ", ".join(f"{k} {v}" for k, v in merge.parameters.items())
    label = f"{merge.executor} {merge.method}" + (f" ({parameters})" if parameters else "")
    return label + (", weights: validation" if merge.weights == "validation" else "")


def describe(plan: Plan) -> list[str]:
    """Lines for `mot plan`: the candidates, what they cost per round, and the final model's rule."""
    recipe = plan.recipe
    if not recipe.validation:
        return []
    lines = []
    merges = recipe.merges()
    if len(merges) > 1:
        first = [s for s in plan.steps if s.round == 1 and s.baseline is None]
        evals = [s for s in first if isinstance(s, EvalStep)]
        tests = sum(s.on_test_set for s in evals)
        lines += [f"merge candidates, one chosen per round on validation: "
                  + "; ".join(f"{name} ({merge_label(merge)})" for name, merge in merges),
                  f"  each round: {sum(s.merges for s in first)} merges instead of 1, {len(evals) - tests} "
                  f"evaluations on validation, {tests} on the test set (for the report)"]
    return lines + [f"final model (mot.select: {recipe.mot.select}): {RULES[recipe.mot.select]}; every evaluation "
                    f"on the test set runs at the end of the run, after every choice"]


def _choose_step(plan: Plan, round_: int) -> Step | None:
    return next((s for s in plan.steps if isinstance(s, ChooseStep) and s.round == round_ and s.baseline is None), None)


def _chosen(step: Step | None, done: dict) -> str | None:
    return ((done.get(step.id) or {}).get("result") or {}).get("chosen") if step else None


def round_evaluations(plan: Plan, round_: int, done: dict) -> tuple[Step | None, Step | None]:
    """The evaluations of round `round_`'s student on the test set and on validation: its own, or
    (a round with candidates) those of the candidate it chose; None where there is none (yet)."""
    choose = _choose_step(plan, round_)
    chosen = _chosen(choose, done)
    if choose and chosen is None:
        return None, None
    evals = [s for s in plan.steps if isinstance(s, EvalStep) and s.round == round_ and s.baseline is None
             and (s.spec.role, s.spec.candidate) == (("candidate", chosen) if choose else ("round", None))]
    return tuple(next((s for s in evals if s.spec.split == split), None) for split in ("test", "validation"))


def candidate_rows(plan: Plan, done: dict, evaluation: Callable[[Step | None, dict], dict]) -> list[dict[str, Any]]:
    """One row per merge candidate of every round: its merge, validation and test numbers
    (`evaluation` of each), whether it was chosen, its weights and the seconds it cost."""
    rows = []
    merges = dict(plan.recipe.merges())
    for choose in (s for s in plan.steps if isinstance(s, ChooseStep) and s.baseline is None):
        chosen = _chosen(choose, done)
        for name in choose.spec.candidates:
            own = [s for s in plan.steps if s.round == choose.round and s.baseline is None
                   and (getattr(s.spec, "candidate", None) == name)]
            evals = {s.spec.split: s for s in own if isinstance(s, EvalStep)}
            merge = next(s for s in own if s.merges)
            rows.append({"round": choose.round, "candidate": name, "merge": merge_label(merges[name]),
                         "chosen": None if chosen is None else name == chosen,
                         "validation": evaluation(evals.get("validation"), done),
                         "test": evaluation(evals.get("test"), done),
                         "weights": ((done.get(merge.id) or {}).get("result") or {}).get("weights"),
                         "seconds": round(sum(done[s.id]["seconds"] for s in own if s.id in done), 1)})
    return rows


def selection(rounds: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    """The final model by each rule, the recipe's marked `used`: the last round, and the round whose
    student scored highest on validation (ties: the earlier round), with their test numbers."""
    trained = [r for r in rounds if r["round"] > 0]
    scored = [r for r in trained if (r.get("validation") or {}).get("accuracy") is not None]
    picks = {"last": trained[-1] if trained else None,
             "validation": max(scored, key=lambda r: r["validation"]["accuracy"]) if scored else None}
    return [{"rule": name, "used": name == rule, "round": row["round"],
             "validation": (row.get("validation") or {}).get("accuracy"), "accuracy": row["accuracy"], "ci": row["ci"]}
            for name, row in picks.items() if row is not None]


def final_step(plan: Plan) -> Step:
    """The step that made the run's final model by `mot.select`: the last round's, or that of the
    round whose student is most accurate on validation (read from the finished evaluations)."""
    students = plan.round_students()
    if plan.recipe.mot.select == "last":
        return students[-1]
    done = {}
    for step in plan.steps:
        marker = read_json(step.marker_path) if isinstance(step, (EvalStep, ChooseStep)) else None
        if marker and marker.get("fingerprint") == step.fingerprint:
            done[step.id] = marker
    rows = []
    for round_ in range(1, len(students) + 1):
        _, validation = round_evaluations(plan, round_, done)
        marker = done.get(validation.id) if validation else None
        rows.append({"round": round_, "validation": (marker or {}).get("result"), "accuracy": None, "ci": None})
    picked = next((row for row in selection(rows, "validation") if row["used"]), None)
    return students[picked["round"] - 1] if picked else students[-1]


def selected_round(metrics: dict[str, Any]) -> int | None:
    """The round of one run's final model by the recipe's rule; None without a validation split (the
    last round) or for several runs (each has its own)."""
    if "runs" in metrics:
        return None
    return next((row["round"] for row in metrics.get("selection") or [] if row["used"]), None)


def record_test_scores(plan: Plan, metrics: dict[str, Any]) -> None:
    """Add every candidate's validation and test accuracy to its round's `summary.json` (written when
    the round ended, before any test evaluation ran)."""
    for round_, student in enumerate(plan.round_students(), 1):
        path = Path(student.output_dir).parent / "summary.json"
        rows = [row for row in metrics.get("candidates") or [] if row["round"] == round_]
        summary = read_json(path)
        if rows and isinstance(summary, dict):
            summary["candidates"] = [{"name": row["candidate"], "merge": row["merge"], "chosen": row["chosen"],
                                      "validation": row["validation"]["accuracy"], "test": row["test"]["accuracy"]}
                                     for row in rows]
            write_json(path, summary)
