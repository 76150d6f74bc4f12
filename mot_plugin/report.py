"""Metrics, the Markdown report, the accuracy plot and the final model's card.

Everything is read from the step markers of one or more run directories (several runs of one recipe
with different seeds are reported as mean ± std); nothing is recomputed.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from mot_plugin.planner import Plan
from mot_plugin.recipe import dump_yaml
from mot_plugin.atomic import read_json, write_json, write_text

EVAL_FIELDS = ("accuracy", "accuracy_std", "unextracted", "mean_response_tokens")


def _results(plan: Plan) -> dict[str, dict[str, Any]]:
    """step id -> {"result": ..., "seconds": ...} for every finished step."""
    done = {}
    for step in plan.steps:
        marker = read_json(step.marker_path)
        if marker and marker.get("fingerprint") == step.fingerprint:
            done[step.id] = marker
    return done


def _training(steps: list, done: dict) -> dict[str, Any]:
    """Compute and loss of a group of branch and merge steps."""
    branches = [done[s.id]["result"] for s in steps if s.kind == "branch" and s.id in done]
    losses = [b["final_train_loss"] for b in branches if b.get("final_train_loss") is not None]
    return {
        "branch_steps": sum(b.get("steps", 0) for b in branches),
        "tokens_trained": sum(b.get("tokens_trained", 0) for b in branches),
        "train_loss": round(statistics.mean(losses), 4) if losses else None,
        "seconds": round(sum(done[s.id]["seconds"] for s in steps if s.id in done), 1),
    }


def _evaluation(plan: Plan, done: dict, name: str) -> dict[str, Any]:
    marker = done.get(f"eval/{name}")
    return {k: marker["result"].get(k) for k in EVAL_FIELDS} if marker else dict.fromkeys(EVAL_FIELDS)


def collect_metrics(plan: Plan) -> dict[str, Any]:
    """Per round (0 = the student) and per baseline: accuracy and compute, from the markers."""
    done = _results(plan)
    mot = plan.recipe.mot
    rounds, branch_steps, tokens = [], 0, 0
    for r in range(0, mot.rounds + 1):
        steps = [s for s in plan.steps if s.round == r and s.id.startswith(("round-", "eval/round-"))]
        training = _training(steps, done)
        branch_steps += training["branch_steps"]
        tokens += training["tokens_trained"]
        rounds.append({"round": r, **_evaluation(plan, done, f"round-{r:02d}"), **training,
                       "cumulative_branch_steps": branch_steps, "cumulative_tokens_trained": tokens})
    baselines = {}
    for step in plan.steps:
        if step.kind == "eval" and not step.spec.name.startswith("round-"):
            model_step = next(s for s in plan.steps if s.id == step.deps[0])
            group = [step, model_step] + [s for s in plan.steps if s.id in model_step.deps]
            baselines[step.spec.name] = {**_evaluation(plan, done, step.spec.name), **_training(group, done)}
    return {
        "run_dir": str(plan.recipe.run_dir),
        "student": plan.recipe.student,
        "teachers": [t.name for t in mot.teachers],
        "rounds": mot.rounds,
        "steps_per_round": mot.steps_per_round,
        "merge": mot.merge.method,
        "baseline_budget": mot.baseline_budget,
        "eval": mot.eval.model_dump(mode="json") if mot.eval else None,
        "mot": rounds,
        "baselines": baselines,
    }


def _mean_std(values: list) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs (seeds) of one recipe: accuracy as mean and std across runs, per row."""
    first = runs[0]
    rows = []
    for i, row in enumerate(first["mot"]):
        mean, std = _mean_std([run["mot"][i]["accuracy"] for run in runs if i < len(run["mot"])])
        rows.append({**row, "accuracy": mean, "accuracy_std_across_runs": std})
    baselines = {}
    for name, row in first["baselines"].items():
        mean, std = _mean_std([run["baselines"].get(name, {}).get("accuracy") for run in runs])
        baselines[name] = {**row, "accuracy": mean, "accuracy_std_across_runs": std}
    return {**first, "runs": [run["run_dir"] for run in runs], "mot": rows, "baselines": baselines}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _cell(value: Any) -> str:
    return "–" if value is None else str(value)


def _spread(row: dict) -> str:
    std = row.get("accuracy_std_across_runs", row.get("accuracy_std"))
    return "" if std in (None, 0.0) else f" ± {100 * std:.1f}"


def render_markdown(metrics: dict[str, Any], plot_name: str | None) -> str:
    """The report: every round, every baseline, final and best round, and the compute each used."""
    runs = metrics.get("runs", [metrics["run_dir"]])
    lines = [f"# MoT report: {Path(metrics['run_dir']).name}", ""]
    lines.append(f"- student: `{metrics['student']}`; teachers: {', '.join(metrics['teachers'])}")
    lines.append(f"- {metrics['rounds']} rounds x {metrics['steps_per_round']} steps per branch; "
                 f"merge: {metrics['merge']}; baseline budget: {metrics['baseline_budget']}")
    if metrics["eval"]:
        ev = metrics["eval"]
        decoding = "greedy" if ev["samples"] == 1 else f"{ev['samples']} samples at temperature {ev['temperature']}"
        lines.append(f"- evaluation: `{ev['data']}`" + (f" (first {ev['limit']})" if ev["limit"] else "") +
                     f", {decoding}")
    if len(runs) > 1:
        lines.append(f"- {len(runs)} runs (seeds); accuracy is the mean ± std across runs")
    lines += ["", "## MoT, round by round", "",
              "| round | accuracy | unextracted | mean response tokens | mean final train loss | "
              "branch-steps (cumulative) | tokens trained (cumulative) | wall s (round) |",
              "|---|---|---|---|---|---|---|---|"]
    for row in metrics["mot"]:
        lines.append(f"| {row['round']} | {_pct(row['accuracy'])}{_spread(row)} | {_cell(row['unextracted'])} | "
                     f"{_cell(row['mean_response_tokens'])} | {_cell(row['train_loss'])} | {row['cumulative_branch_steps']} | "
                     f"{row['cumulative_tokens_trained']} | {row['seconds']} |")
    if metrics["baselines"]:
        lines += ["", "## Baselines", "",
                  "| baseline | accuracy | unextracted | mean final train loss | branch-steps | tokens trained | wall s |",
                  "|---|---|---|---|---|---|---|"]
        for name, row in metrics["baselines"].items():
            lines.append(f"| {name} | {_pct(row['accuracy'])}{_spread(row)} | {_cell(row['unextracted'])} | "
                         f"{_cell(row['train_loss'])} | {row['branch_steps']} | {row['tokens_trained']} | {row['seconds']} |")
    lines += ["", "## Summary", ""] + _summary(metrics)
    if plot_name:
        lines += ["", f"![accuracy per round]({plot_name})"]
    return "\n".join(lines) + "\n"


def _summary(metrics: dict[str, Any]) -> list[str]:
    rows = [r for r in metrics["mot"] if r["accuracy"] is not None]
    if not rows:
        return ["- no evaluation results yet (add `mot.eval` to the recipe, then `mot run` again)"]
    final = rows[-1]
    best = max(rows, key=lambda r: r["accuracy"])
    out = [f"- final round ({final['round']}): {_pct(final['accuracy'])}{_spread(final)} after "
           f"{final['cumulative_branch_steps']} branch-steps",
           f"- best round ({best['round']}): {_pct(best['accuracy'])} (picked after the fact; the final round "
           f"is the fair number)"]
    scored = {k: v for k, v in metrics["baselines"].items() if v["accuracy"] is not None}
    if scored:
        name, row = max(scored.items(), key=lambda kv: kv[1]["accuracy"])
        delta = 100 * (final["accuracy"] - row["accuracy"])
        verdict = "above" if delta > 0 else ("equal to" if delta == 0 else "below")
        out.append(f"- best baseline: {name} at {_pct(row['accuracy'])} with {row['branch_steps']} branch-steps; "
                   f"MoT's final round is {abs(delta):.1f} points {verdict} it")
    return out


def render_plot(metrics: dict[str, Any], path: Path) -> None:
    """Accuracy per round for MoT, with each baseline as a horizontal reference line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in metrics["mot"] if r["accuracy"] is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    spreads = [100 * (r.get("accuracy_std_across_runs", r.get("accuracy_std")) or 0) for r in rows]
    ax.errorbar([r["round"] for r in rows], [100 * r["accuracy"] for r in rows], yerr=spreads, marker="o",
                linewidth=2, capsize=4, label="MoT", color="black")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, row) in enumerate(b for b in metrics["baselines"].items() if b[1]["accuracy"] is not None):
        ax.axhline(100 * row["accuracy"], linestyle="--", color=colors[i % len(colors)], label=name)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("round (0 = student before MoT)")
    ax.set_ylabel("accuracy (%)")
    ax.set_xticks([r["round"] for r in metrics["mot"]])
    ax.set_title(f"MoT on {Path(metrics['run_dir']).name}: {metrics['merge']} merge")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def model_card(plan: Plan, metrics: dict[str, Any]) -> str:
    """README.md for the final merged model: the recipe, per-round scores and compute."""
    report = render_markdown(metrics, None).split("\n", 1)[1]
    return (f"# MoT student: {Path(metrics['run_dir']).name}\n\n"
            f"Distilled with Merge-of-Thought (mot-plugin) from `{metrics['student']}`: each round, one Axolotl "
            f"SFT branch per teacher started from the current student and mergekit ({metrics['merge']}) merged "
            f"them.\n{report}\n## Recipe\n\n```yaml\n{dump_yaml(plan.recipe.to_dict())}```\n")


def write_report(plans: list[Plan]) -> Path:
    """Write metrics.json, report.md, accuracy.png (first run directory) and the model card."""
    metrics = [collect_metrics(plan) for plan in plans]
    for plan, run_metrics in zip(plans, metrics):
        write_json(plan.recipe.run_dir / "metrics.json", run_metrics)
    combined = combine(metrics) if len(metrics) > 1 else metrics[0]
    out = plans[0].recipe.run_dir
    plot = None
    if any(r["accuracy"] is not None for r in combined["mot"]):
        plot = "accuracy.png"
        render_plot(combined, out / plot)
    write_text(out / "report.md", render_markdown(combined, plot))
    for plan, run_metrics in zip(plans, metrics):
        final = plan.final_student()
        if final.is_dir():
            write_text(final / "README.md", model_card(plan, run_metrics))
    return out / "report.md"
