"""The report's figure: accuracy per round (baselines as reference lines) and the training loss of
every branch along the MoT lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _accuracy_panel(ax, metrics: dict[str, Any], colors: dict[str, str]) -> None:
    rows = [r for r in metrics["mot"] if r["accuracy"] is not None]
    x = [r["round"] for r in rows]
    y = [100 * r["accuracy"] for r in rows]
    if "runs" in metrics:
        errors = [[100 * (r["accuracy_std_across_runs"] or 0) for r in rows]] * 2
    else:  # the 95% interval, where the evaluation gave its size
        errors = [[100 * (r["accuracy"] - r["ci"][0]) if r["ci"] else 0 for r in rows],
                  [100 * (r["ci"][1] - r["accuracy"]) if r["ci"] else 0 for r in rows]]
    ax.errorbar(x, y, yerr=errors, marker="o", linewidth=2, capsize=4, label="MoT (merged)", color="black")
    for teacher in metrics["teachers"]:
        points = [(r["round"], r["branches"][teacher]["accuracy"]) for r in rows
                  if (r.get("branches") or {}).get(teacher, {}).get("accuracy") is not None]
        if points:
            ax.scatter([p[0] for p in points], [100 * p[1] for p in points], marker="x", color=colors[teacher],
                       label=f"branch {teacher}")
    cycle = [c for c in _cycle() if c not in colors.values()] or _cycle()
    scored = [(name, row) for name, row in metrics["baselines"].items() if row["accuracy"] is not None]
    for i, (name, row) in enumerate(scored):
        ax.axhline(100 * row["accuracy"], linestyle="--", color=cycle[i % len(cycle)], label=name)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("round (0 = student before MoT)")
    ax.set_ylabel("accuracy (%)")
    ax.set_xticks([r["round"] for r in metrics["mot"]])
    ax.set_title(f"accuracy, {metrics['merge']} merge")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def _loss_panel(ax, metrics: dict[str, Any], colors: dict[str, str]) -> None:
    """Loss against the cumulative MoT step, one line per teacher and run (rounds concatenated);
    baselines dashed against their own steps."""
    steps = metrics["steps_per_round"]
    labelled: set[str] = set()
    lines: dict[tuple[str, str, bool], list] = {}
    for row in sorted(metrics["training"], key=lambda b: b["round"]):
        offset = 0 if row["baseline"] else (row["round"] - 1) * steps
        lines.setdefault((row.get("run", ""), row["name"], row["baseline"]), []).extend(
            (offset + step, loss) for step, loss in row["loss_curve"])
    cycle = [c for c in _cycle() if c not in colors.values()] or _cycle()
    baseline_colors: dict[str, str] = {}
    for (_, name, baseline), points in lines.items():
        if not points:
            continue
        if baseline:
            color = baseline_colors.setdefault(name, cycle[len(baseline_colors) % len(cycle)])
        else:
            color = colors.get(name, "black")
        ax.plot([p[0] for p in points], [p[1] for p in points], color=color, linestyle="--" if baseline else "-",
                linewidth=1 if baseline else 1.5, alpha=0.8, label=None if name in labelled else name)
        labelled.add(name)
    for r in range(1, metrics["rounds"]):
        ax.axvline(r * steps, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("cumulative MoT step (dotted: round boundaries)")
    ax.set_ylabel("train loss")
    ax.set_title("training loss per branch (dashed: baselines)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def _cycle() -> list[str]:
    import matplotlib.pyplot as plt

    return plt.rcParams["axes.prop_cycle"].by_key()["color"]


def render_plot(metrics: dict[str, Any], path: Path) -> bool:
    """Draw the accuracy panel (when there are evaluations) and the loss panel (when branches recorded
    loss curves) into `path`; False, and nothing written, when there is neither."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    if any(r["accuracy"] is not None for r in metrics["mot"]):
        panels.append(_accuracy_panel)
    if any(row["loss_curve"] for row in metrics.get("training") or []):
        panels.append(_loss_panel)
    if not panels:
        return False
    cycle = _cycle()
    colors = {teacher: cycle[i % len(cycle)] for i, teacher in enumerate(metrics["teachers"])}
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.2), dpi=100, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        panel(ax, metrics, colors)
    fig.suptitle(f"MoT on {Path(metrics['run_dir']).name}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True
