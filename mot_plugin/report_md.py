"""The Markdown report: every round and baseline with its 95% interval (overall and per slice), merge
gains, paired tests, merge diagnostics and training, and a summary that says when a difference is
within the noise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mot_plugin.choices import RULES, selected_round

SIGNIFICANCE = 0.05
LOSS = ".4f"
"""Every train loss, in every table: 4 decimals."""


def _cell(value: Any) -> str:
    return "–" if value is None else str(value)


def _number(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "–" if value is None else format(scale * value, spec)


def _percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def _acc(entry: dict, key: str = "accuracy") -> str:
    """`63.0% [57.4, 68.3]` for one run; `63.0% ± 2.1 (61.0, 65.0)` (each run's value) for several."""
    value = entry.get(key)
    if value is None:
        return "n/a"
    if f"{key}_per_run" in entry:
        runs = ", ".join(_number(v, ".1f", 100) for v in entry[f"{key}_per_run"])
        return f"{100 * value:.1f}% ± {100 * (entry[f'{key}_std_across_runs'] or 0):.1f} ({runs})"
    ci = entry.get("ci")
    return f"{100 * value:.1f}%" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def _points(entry: dict | None, key: str) -> str:
    """A difference in points: `+2.0`, or `+2.0 ± 1.0 (+1.0, +3.0)` over several runs."""
    value = (entry or {}).get(key)
    if value is None:
        return "–"
    if f"{key}_per_run" in entry:
        runs = ", ".join(_number(v, "+.1f") for v in entry[f"{key}_per_run"])
        return f"{value:+.1f} ± {entry[f'{key}_std_across_runs'] or 0:.1f} ({runs})"
    return f"{value:+.1f}"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def _with_run(header: list[str], rows: list[dict], cells) -> list[str]:
    """A per-run table: a `run` column first when the rows come from several runs."""
    several = any("run" in row for row in rows)
    return _table((["run"] if several else []) + header,
                  [([row["run"]] if several else []) + cells(row) for row in rows])


def _executor(metrics: dict[str, Any]) -> str:
    """` (mergekit)`: the merge executor, as the run recorded it (not in older runs' metrics)."""
    return f" ({metrics['merge_executor']})" if metrics.get("merge_executor") else ""


def _header(metrics: dict[str, Any]) -> list[str]:
    lines = [f"# MoT report: {Path(metrics['run_dir']).name}", "",
             f"- student: `{metrics['student']}`; teachers: {', '.join(metrics['teachers'])}",
             f"- {metrics['rounds']} rounds x {metrics['steps_per_round']} steps per branch; "
             f"merge: {metrics['merge']}{_executor(metrics)}; baseline budget: {metrics['baseline_budget']}"]
    ev = metrics["eval"]
    if ev:
        decoding = "greedy" if ev["samples"] == 1 else f"{ev['samples']} samples at temperature {ev['temperature']}"
        lines.append(f"- evaluation: `{ev['data']}`" + (f" (first {ev['limit']})" if ev["limit"] else "") +
                     f", {decoding}")
    if "runs" in metrics:
        lines.append(f"- {len(metrics['runs'])} runs ({', '.join(metrics['run_labels'])}): accuracy is the mean ± std "
                     f"across runs, each run's value in parentheses; each run's own report has its 95% intervals")
    elif ev:
        correlated = ("" if ev["samples"] == 1
                      else " (samples of one problem are correlated: the interval is too narrow)")
        lines.append(f"- accuracy [95% Wilson interval] over n = problems x samples answers{correlated}")
    return lines


def _rounds(metrics: dict[str, Any]) -> list[str]:
    accuracy = "accuracy: mean ± std (per run)" if "runs" in metrics else "accuracy [95% CI]"
    lines = ["", "## MoT, round by round", ""]
    lines += _table([
        "round", accuracy, "unextracted", "mean response tokens", "mean final train loss",
        "branch-steps (cumulative)", "tokens trained (cumulative)", "wall s (round)"], [
        [r["round"], _acc(r), _cell(r["unextracted"]), _number(r["mean_response_tokens"], ".1f"),
         _number(r["train_loss"], LOSS), r["cumulative_branch_steps"], r["cumulative_tokens_trained"],
         _number(r["seconds"], ".1f")] for r in metrics["mot"]])
    return lines + _merge_gains(metrics, sliced=False)


GAIN_SECTIONS = {
    False: ("Merge gain: each round's merge against its branches",
            "Each branch is evaluated on the same problems as the merged model; the gain is the merged model's "
            "accuracy minus the branches' mean, and minus the best branch's, in points."),
    True: ("Merge gain by slice", "Each round's merge against its branches on each slice: a merge that keeps less "
                                  "of what its branches learned shows here first."),
}


def _merge_gains(metrics: dict[str, Any], sliced: bool) -> list[str]:
    """Each round's merged model against its branches: one row per round, or (`sliced`) per round and slice."""
    rounds = [r for r in metrics["mot"] if r.get("slice_merge_gain" if sliced else "branches")]
    if not rounds:
        return []
    teachers = list(rounds[0]["branches"])

    def on(entry: dict | None, tag: str | None) -> dict:
        return ((entry or {}).get("slices") or {}).get(tag, {}) if tag else entry or {}

    rows = [(r, tag, r["slice_merge_gain"][tag] if tag else r["merge_gain"])
            for r in rounds for tag in (r["slice_merge_gain"] if sliced else [None])]
    title, text = GAIN_SECTIONS[sliced]
    header = ["round", *(["slice"] if sliced else []), *(f"branch {t}" for t in teachers), "merged",
              "merged − mean branch", "merged − best branch"]
    return ["", f"## {title}", "", text, ""] + _table(header, [
        [r["round"], *([tag] if sliced else []), *(_acc(on(r["branches"].get(t), tag)) for t in teachers),
         _acc(on(r, tag)), _points(gain, "vs_mean"), _points(gain, "vs_best")] for r, tag, gain in rows])


def _baselines(metrics: dict[str, Any]) -> list[str]:
    lines = []
    if metrics["baselines"]:
        accuracy = "accuracy: mean ± std (per run)" if "runs" in metrics else "accuracy [95% CI]"
        lines += ["", "## Baselines", ""]
        lines += _table(["baseline", accuracy, "unextracted", "mean final train loss", "branch-steps",
                         "tokens trained", "wall s"],
                        [[name, _acc(row), _cell(row["unextracted"]), _number(row["train_loss"], LOSS),
                          row["branch_steps"], row["tokens_trained"], _number(row["seconds"], ".1f")]
                         for name, row in metrics["baselines"].items()])
    paired = metrics.get("paired") or []
    if paired:
        majority = (" With several samples per problem, a problem counts as right when most of its samples are "
                    "(ties count as wrong).") if any(p["majority"] for p in paired) else ""
        lines += ["", "## MoT's final round against each baseline, problem by problem", "",
                  "Exact McNemar test on the same problems: b = problems MoT's final round got right and the "
                  f"baseline wrong, c = the reverse; p is two-sided.{majority}", ""]
        lines += _with_run(["baseline", "MoT round", "problems", "b", "c", "McNemar p"], paired, lambda p: [
            p["baseline"], p["round"], p["problems"], p["b"], p["c"], f"{p['p']:.2g}"])
        by_slice = [{**({"run": p["run"]} if "run" in p else {}), "baseline": p["baseline"], "slice": tag, **test}
                    for p in paired for tag, test in (p.get("slices") or {}).items()]
        if by_slice:
            lines += ["", "The same test on each slice's problems:", ""]
            lines += _with_run(["baseline", "slice", "problems", "b", "c", "McNemar p"], by_slice, lambda p: [
                p["baseline"], p["slice"], p["problems"], p["b"], p["c"], f"{p['p']:.2g}"])
    return lines


def _tags(metrics: dict[str, Any]) -> dict[str, int | None]:
    """Every slice (tag) an evaluation of the report has, in sorted order, with its number of problems."""
    entries = [*metrics["mot"], *(b for r in metrics["mot"] for b in (r.get("branches") or {}).values()),
               *metrics["baselines"].values()]
    found = {tag: s.get("problems") for e in entries for tag, s in (e.get("slices") or {}).items()}
    return dict(sorted(found.items()))


def _evaluated(metrics: dict[str, Any]) -> list[tuple[str, dict]]:
    """Every evaluated model of the report, named: the student, each round's branches and merged model,
    each baseline."""
    rows = []
    for r in metrics["mot"]:
        rows += [(f"round {r['round']} branch {t}", b) for t, b in (r.get("branches") or {}).items()]
        rows.append(("student (round 0)" if not r["round"] else f"round {r['round']}" +
                     (" merged" if r.get("branches") else ""), r))
    return rows + [(f"baseline {name}", row) for name, row in metrics["baselines"].items()]


def _slices(metrics: dict[str, Any]) -> list[str]:
    """Accuracy on each slice (tag) for every evaluated model, and each merge's gain per slice."""
    tags = _tags(metrics)
    if not tags:
        return []
    accuracy = "mean ± std (per run)" if "runs" in metrics else "[95% CI]"
    lines = ["", "## Accuracy by slice", "",
             f"A slice is the eval problems carrying one tag (`tags` in the eval file); accuracy {accuracy} "
             "on each slice's problems, next to the overall accuracy.", ""]
    lines += _table(["model", "all", *(f"{tag} ({n} problem{'' if n == 1 else 's'})" for tag, n in tags.items())],
                    [[name, _acc(row), *(_acc((row.get("slices") or {}).get(tag, {})) for tag in tags)]
                     for name, row in _evaluated(metrics) if row.get("accuracy") is not None])
    return lines + _merge_gains(metrics, sliced=True)


def _choices(metrics: dict[str, Any]) -> list[str]:
    """Each round's merge candidates, and the final model by each rule."""
    lines = []
    candidates = metrics.get("candidates") or []
    validation = Path((metrics.get("eval") or {}).get("validation") or "validation").name
    if candidates:
        lines += ["", "## Merge candidates, chosen on validation", "",
                  f"Each round merged its branches once per candidate and continued with the candidate most "
                  f"accurate on the validation split (`{validation}`), ties going to the one listed first. The "
                  f"test accuracies were measured at the end of the run, after every choice, for this report only.",
                  ""]
        for round_ in dict.fromkeys(row["round"] for row in candidates):
            rows = [row for row in candidates if row["round"] == round_]
            lines += [f"Round {round_}:", ""] + _with_run(
                ["candidate", "merge", "validation [95% CI]", "test [95% CI]", "chosen", "weights", "wall s"], rows,
                lambda c: [c["candidate"], c["merge"], _acc(c["validation"]), _acc(c["test"]),
                           {True: "**chosen**", False: "", None: "–"}[c["chosen"]],
                           ", ".join(f"{t} {w:g}" for t, w in (c.get("weights") or {}).items()) or "–",
                           c["seconds"]]) + [""]
        lines.pop()
    selection = metrics.get("selection") or []
    if selection:
        used = next(row["rule"] for row in selection if row["used"])
        lines += ["", "## The final model", "",
                  f"By the recipe's rule (`mot.select: {used}`) the final model is {RULES[used]}; both rules are "
                  f"shown with the test numbers of the round each picks.", ""]
        lines += _with_run(["rule", "round", "validation", "test [95% CI]"], selection, lambda r: [
            RULES[r["rule"]] + (" (used)" if r["used"] else ""), r["round"], _percent(r["validation"]), _acc(r)])
    return lines


def _diagnostics(metrics: dict[str, Any]) -> list[str]:
    rows = metrics.get("diagnostics") or []
    if not rows:
        return []

    def update_range(row: dict) -> str:
        values = list((row.get("relative_update") or {}).values())
        return f"{100 * min(values):.2f}–{100 * max(values):.2f}%" if values else "–"

    lines = ["", "## Merge diagnostics", "",
             "Relative update: |branch − start| / |start|; cosine between the branches' updates; the share of "
             "parameters whose updates disagree in sign.", ""]
    return lines + _with_run(["round", "relative update per branch", "mean cosine", "sign disagreement",
                              "merged relative update", "warnings"], rows, lambda d: [
        f"{d['round']} ({d['candidate']})" if d.get("candidate") else d["round"], update_range(d), _number(d.get("mean_cosine"), ".3f"), _percent(d.get("sign_disagreement")),
        _percent(d.get("merged_relative_update"), 2),
        "; ".join(d.get("warnings") or []) or "–"])


def _training(metrics: dict[str, Any]) -> list[str]:
    rows = metrics.get("training") or []
    if not rows:
        return []
    return ["", "## Training, branch by branch", ""] + _with_run(
        ["round", "branch", "steps", "final train loss", "tokens trained"], rows, lambda b: [
            "baseline" if b["baseline"] else b["round"], b["name"], _cell(b["steps"]),
            _number(b["final_train_loss"], LOSS), _cell(b["tokens_trained"])])


def _bounds(entry: dict) -> tuple[float, float] | None:
    if "accuracy_per_run" in entry:
        std = entry["accuracy_std_across_runs"] or 0.0
        return entry["accuracy"] - std, entry["accuracy"] + std
    return tuple(entry["ci"]) if entry.get("ci") else None


def _verdict(a: dict, b: dict, paired: list[dict], several: bool) -> str:
    """Whether `a` and `b` differ beyond the noise: their ranges, and the paired test when there is one."""
    bounds = _bounds(a), _bounds(b)
    overlap = None if None in bounds else bounds[0][0] <= bounds[1][1] and bounds[1][0] <= bounds[0][1]
    ranges = "mean ± std ranges across runs" if several else "95% intervals"
    text = "" if overlap is None else f"; the {ranges} {'overlap' if overlap else 'do not overlap'}"
    if paired:
        ps = [p["p"] for p in paired]
        text += (", McNemar p per run: " + ", ".join(f"{p:.2g}" for p in ps) if several
                 else f", McNemar p={ps[0]:.2g} (b={paired[0]['b']}, c={paired[0]['c']})")
        significant = sum(p < SIGNIFICANCE for p in ps)
        if not significant:
            return text + ": no significant difference"
        runs = "" if significant == len(ps) else f" in {significant} of {len(ps)} runs"
        return text + f": significant at the 5% level{runs}"
    return text + (": no significant difference shown" if overlap else "")


def _summary(metrics: dict[str, Any]) -> list[str]:
    rows = [r for r in metrics["mot"] if r["accuracy"] is not None]
    if not rows:
        return ["- no evaluation results yet (add `mot.eval` to the recipe, then `mot run` again)"]
    several = "runs" in metrics
    selected = selected_round(metrics)
    final = next((r for r in rows if r["round"] == selected), rows[-1])
    highest = max(rows, key=lambda r: r["accuracy"])
    label = (f"final model (round {final['round']}, chosen on validation by mot.select)"
             if metrics.get("select") == "validation" and selected is not None else f"final round ({final['round']})")
    out = [f"- {label}: {_acc(final)} after {final['cumulative_branch_steps']} branch-steps"]
    if highest is final:
        out.append("- the final round is also the highest round")
    else:
        out.append(f"- highest round ({highest['round']}): {_acc(highest)}, picked after the fact (the final round is "
                   f"the fair number)" + _verdict(highest, final, [], several))
    scored = {k: v for k, v in metrics["baselines"].items() if v["accuracy"] is not None}
    if scored:
        name, row = max(scored.items(), key=lambda kv: kv[1]["accuracy"])
        paired = [p for p in metrics.get("paired") or [] if p["baseline"] == name]
        delta = 100 * (final["accuracy"] - row["accuracy"])
        if delta < 0:
            line = (f"- {name} is the highest baseline at {_acc(row)} with {row['branch_steps']} branch-steps, "
                    f"{-delta:.1f} points above MoT's final round")
        else:
            lead = f"is {delta:.1f} points above" if delta else "equals"
            line = (f"- MoT's final round {lead} the highest baseline, {name} at {_acc(row)} "
                    f"with {row['branch_steps']} branch-steps")
        out.append(line + _verdict(final, row, paired, several))
        for tag in _tags(metrics):
            mine, theirs = ((entry.get("slices") or {}).get(tag) for entry in (final, row))
            if mine and theirs and mine.get("accuracy") is not None and theirs.get("accuracy") is not None:
                tests = [p["slices"][tag] for p in paired if tag in (p.get("slices") or {})]
                out.append(f"- on slice `{tag}`: MoT's final round {_acc(mine)}, {name} {_acc(theirs)}"
                           + _verdict(mine, theirs, tests, several))
    for tag in ["", *_tags(metrics)]:
        gains = [r["slice_merge_gain"].get(tag) if tag else r["merge_gain"] for r in metrics["mot"]
                 if r.get("slice_merge_gain" if tag else "merge_gain")]
        gains = [g for g in gains if (g or {}).get("vs_mean") is not None]
        if gains:
            out.append(f"- {f'on slice `{tag}`, ' if tag else ''}the merge beat the mean of its branches in "
                       f"{sum(g['vs_mean'] > 0 for g in gains)} of {len(gains)} rounds and the best branch in "
                       f"{sum(g['vs_best'] > 0 for g in gains)}")
    return out


def render_markdown(metrics: dict[str, Any], plot_name: str | None) -> str:
    """The report: every round, merge candidates, baselines, paired tests, accuracy by slice, merge
    diagnostics, training, and a summary."""
    lines = (_header(metrics) + _rounds(metrics) + _choices(metrics) + _baselines(metrics) + _slices(metrics)
             + _diagnostics(metrics)
             + _training(metrics))
    lines += ["", "## Summary", ""] + _summary(metrics)
    if plot_name:
        lines += ["", f"![accuracy per round and training loss]({plot_name})"]
    return "\n".join(lines) + "\n"
