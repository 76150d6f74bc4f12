"""`mot compare RUN_A RUN_B`: two runs side by side, how a person checks that a reproduction
reproduced: every evaluation (rounds, branches, baselines, and each slice) in both with its interval,
the exact McNemar test where both answered the same problems, and what differs in their recipes and
input data."""

from __future__ import annotations

from typing import Any

from mot_plugin.atomic import read_json
from mot_plugin.datahash import HASHES_FILE
from mot_plugin.errors import load_yaml
from mot_plugin.planner import Plan
from mot_plugin.published import entries, judge
from mot_plugin.report import evaluations, paired_test, verdicts
from mot_plugin.report_md import _acc, _table
from mot_plugin.rundir import RECIPE_FILE


def _recipe(plan: Plan) -> dict[str, Any]:
    """The run's recipe as it ran (`recipe.yaml`: paths resolved, `mot.run_dir: .`)."""
    return load_yaml(plan.recipe.run_dir / RECIPE_FILE)


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists as `a.b.0.c: value`."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else None
    if items is None:
        return {prefix: data}
    flat = {}
    for key, value in items:
        flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat or {prefix: data}


def _evaluations(a: Plan, b: Plan) -> list[dict[str, Any]]:
    """Every evaluation of either run: both runs' numbers, and McNemar (b: problems only A got right, c:
    only B) when both kept their answers for the same problems in the same order."""
    ours, theirs = evaluations(a), evaluations(b)
    rows = []
    for name in [*ours, *(n for n in theirs if n not in ours)]:
        (step_a, row_a), (step_b, row_b) = ours.get(name, (None, None)), theirs.get(name, (None, None))
        mine, other = (verdicts(step) if step else None for step in (step_a, step_b))
        paired, note = None, "no answers kept (samples.jsonl)"
        if mine and other:
            same = mine.prompts == other.prompts
            paired, note = (paired_test(mine, other), "") if same else (None, "different problems")
        rows.append({"evaluation": name, "a": row_a, "b": row_b, "paired": paired, "note": note})
    return rows


def _inputs(plan: Plan) -> dict[str, dict[str, Any]]:
    """The run's inputs with the hashes its `data.json` recorded."""
    data = _recipe(plan)
    return entries(data, data, read_json(plan.recipe.run_dir / HASHES_FILE) or {})


def _data(a: Plan, b: Plan) -> list[dict[str, Any]]:
    """Every input of either run: the same data, different data, or not comparable."""
    ours, theirs = _inputs(a), _inputs(b)
    rows = []
    for key in [*ours, *(k for k in theirs if k not in ours)]:
        mine, other = ours.get(key), theirs.get(key)
        if mine is None or other is None:
            state = "only in B" if mine is None else "only in A"
        elif not all({"sha256", "files", "hub"} & entry.keys() for entry in (mine, other)):
            state = "not recorded"
        else:
            state = judge(mine, other)[0]
        rows.append({"input": key, "a": (mine or {}).get("path") or (mine or {}).get("hub"),
                     "b": (other or {}).get("path") or (other or {}).get("hub"), "state": state})
    return rows


def _identical(rows: list[dict[str, Any]]) -> bool:
    """Every evaluation in both runs, with the same accuracy overall and on every slice, and the same
    answer to every problem where both kept their answers."""
    for row in rows:
        a, b = row["a"], row["b"]
        if a is None or b is None or a["accuracy"] != b["accuracy"]:
            return False
        if {t: s["accuracy"] for t, s in (a.get("slices") or {}).items()} != {
                t: s["accuracy"] for t, s in (b.get("slices") or {}).items()}:
            return False
        if row["paired"] and (row["paired"]["b"] or row["paired"]["c"]):
            return False
    return True


def compare_runs(a: Plan, b: Plan) -> dict[str, Any]:
    """Two runs side by side: evaluations, recipe differences (`key: A, B`), input data, and whether
    their results are identical."""
    rows = _evaluations(a, b)
    flat_a, flat_b = _flat(_recipe(a)), _flat(_recipe(b))
    recipe = [{"key": key, "a": flat_a.get(key), "b": flat_b.get(key)}
              for key in [*flat_a, *(k for k in flat_b if k not in flat_a)] if flat_a.get(key) != flat_b.get(key)]
    return {"a": str(a.recipe.run_dir), "b": str(b.recipe.run_dir), "evaluations": rows, "recipe": recipe,
            "data": _data(a, b), "identical": _identical(rows)}


def _value(value: Any) -> str:
    return "–" if value is None else f"`{value}`"


def _mcnemar(test: dict[str, Any] | None, note: str) -> str:
    if not test:
        return note
    return f"b={test['b']}, c={test['c']}, p={test['p']:.2g} ({test['problems']} problems)"


def _points(a: dict | None, b: dict | None) -> str:
    if not a or not b or a.get("accuracy") is None or b.get("accuracy") is None:
        return "–"
    return f"{100 * (b['accuracy'] - a['accuracy']):+.1f}"


def render(comparison: dict[str, Any]) -> str:
    """The comparison as Markdown."""
    lines = ["# Comparing two runs", "", f"- A: {comparison['a']}", f"- B: {comparison['b']}", "",
             "## Evaluations", "",
             "Accuracy [95% CI] in each run; McNemar on the same problems: b = problems only A got right, "
             "c = only B, p two-sided.", ""]
    cells = []
    for row in comparison["evaluations"]:
        a, b, paired = row["a"], row["b"], row["paired"]
        cells.append([row["evaluation"], _acc(a or {}), _acc(b or {}), _points(a, b), _mcnemar(paired, row["note"])])
        for tag in sorted({*((a or {}).get("slices") or {}), *((b or {}).get("slices") or {})}):
            on_a, on_b = ((entry or {}).get("slices", {}).get(tag) for entry in (a, b))
            test = ((paired or {}).get("slices") or {}).get(tag)
            cells.append([f"{row['evaluation']} on {tag}", _acc(on_a or {}), _acc(on_b or {}), _points(on_a, on_b),
                          _mcnemar(test, row["note"])])
    lines += _table(["evaluation", "A", "B", "B − A (points)", "McNemar"], cells)
    lines += ["", "## Recipes", ""]
    lines += _table(["key", "A", "B"], [[r["key"], _value(r["a"]), _value(r["b"])] for r in comparison["recipe"]]) \
        if comparison["recipe"] else ["The same recipe."]
    lines += ["", "## Input data", ""]
    lines += _table(["input", "A", "B", "data"], [[r["input"], _value(r["a"]), _value(r["b"]), r["state"]]
                                                 for r in comparison["data"]])
    lines += ["", "## Results", ""]
    if comparison["identical"]:
        paired = sum(bool(r["paired"]) for r in comparison["evaluations"])
        lines.append(f"Identical: all {len(comparison['evaluations'])} evaluations have the same accuracy in both runs "
                     f"(every slice too), and in the {paired} whose answers both runs kept, every problem was answered "
                     "right or wrong alike.")
    else:
        differ = [r["evaluation"] for r in comparison["evaluations"] if not _identical([r])]
        lines.append(f"Different: {len(differ)} of {len(comparison['evaluations'])} evaluations differ "
                     f"({', '.join(differ)}).")
    return "\n".join(lines) + "\n"
