"""Model cards (huggingface_hub's `ModelCard`): one for every round's merged model, and the final
student's, which carries the whole run.

Front matter: `base_model` (the round-0 student), `tags`, `datasets` (teachers' hub datasets),
`library_name` and a `model-index` with the evaluation results. Paths are shown as the recipe's author
wrote them (`recipe.source.yaml`), or relative to the run directory, never as this machine's.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from mot_plugin.atomic import read_json, write_text
from mot_plugin.choices import final_step, merge_label
from mot_plugin.datahash import HASHES_FILE
from mot_plugin.environment import ENVIRONMENT_FILE
from mot_plugin.planner import Plan
from mot_plugin.report_md import _percent, render_markdown
from mot_plugin.rundir import RECIPE_FILE, SOURCE_FILE
from mot_plugin.steps import Step

TAGS = ["merge-of-thought", "distillation", "mergekit", "axolotl"]
CARD = "README.md"
PLOT = "accuracy.png"


class Paths:
    """How a path of the run is shown: as the recipe's author wrote it, relative to the run directory,
    or by its file name."""

    def __init__(self, plan: Plan):
        self.run_dir = plan.recipe.run_dir
        self.written: dict[str, str] = {}
        source = _read_yaml(self.run_dir / SOURCE_FILE)
        mot = (source or {}).get("mot") or {}
        recipe = plan.recipe
        pairs = [(recipe.student, (source or {}).get("base_model"))]
        if recipe.mot.eval:
            pairs += [(getattr(recipe.mot.eval, key), (mot.get("eval") or {}).get(key)) for key in ("data", "validation")]
        for teacher, written in zip(recipe.mot.teachers, mot.get("teachers") or []):
            for entry, entry_written in zip(teacher.datasets, (written or {}).get("datasets") or []):
                pairs.append((entry.get("path"), (entry_written or {}).get("path")))
        self.written = {str(a): str(b) for a, b in pairs if isinstance(a, str) and isinstance(b, str)}

    def show(self, path: str | Path) -> str:
        text = str(path)
        if text in self.written:
            return self.written[text]
        for resolved, written in self.written.items():
            if text.startswith(resolved + "/"):
                return written.rstrip("/") + text[len(resolved):]
        if not Path(text).is_absolute():
            return text
        if text == str(self.run_dir) or text.startswith(f"{self.run_dir}/"):
            return str(Path(text).relative_to(self.run_dir))
        return Path(text).name


def _merged_by(plan: Plan) -> str:
    """The merge executor and method, as the recipe selected them (`mergekit` `linear`), or the
    candidates one of which each round chose."""
    merge = plan.recipe.mot.merge
    if merge.candidates:
        return ("the merge candidate most accurate on the validation split (of "
                + ", ".join(f"{name}: {merge_label(m)}" for name, m in plan.recipe.merges()) + ")")
    return f"{merge.executor} `{merge.method}`"


def _read_yaml(path: Path) -> Any:
    """The YAML data in `path`, or None if it is missing or unreadable."""
    try:
        return yaml.safe_load(path.read_text())
    except (FileNotFoundError, yaml.YAMLError):
        return None


def _hub_datasets(plan: Plan) -> list[str]:
    """Teachers' datasets that are hub ids (not local files)."""
    found = []
    for teacher in plan.recipe.mot.teachers:
        for entry in teacher.datasets:
            path = entry.get("path")
            if isinstance(path, str) and not Path(path).is_absolute():  # local paths are absolute once loaded
                found.append(path)
    return list(dict.fromkeys(found))


def _eval_results(metrics: dict, paths: Paths, rounds: list[int], baselines: bool) -> list[EvalResult]:
    ev = metrics.get("eval")
    if not ev:
        return []
    data = paths.show(ev["data"])
    common = {"task_type": "text-generation", "task_name": "Text generation", "dataset_type": data,
              "dataset_name": Path(data).stem, "metric_type": "accuracy"}
    scored = [(f"round {row['round']}" + (" (student)" if not row["round"] else ""), row)
              for row in metrics["mot"] if row["round"] in rounds]
    scored += [(f"baseline {name}", row) for name, row in metrics["baselines"].items()] if baselines else []
    return [EvalResult(**common, metric_name=f"accuracy{on}, {name}", metric_value=value)
            for name, row in scored
            for on, value in [("", row["accuracy"]), *((f" on {tag}", s["accuracy"])
                                                      for tag, s in (row.get("slices") or {}).items())]
            if value is not None]


def _slice_accuracies(entry: dict) -> str:
    """` (skill 40.0%, kept 95.0%)`: an evaluation's accuracy per slice, or nothing without tags."""
    slices = ", ".join(f"{tag} {100 * s['accuracy']:.1f}%" for tag, s in (entry.get("slices") or {}).items()
                       if s.get("accuracy") is not None)
    return f" ({slices})" if slices else ""


def _front_matter(plan: Plan, metrics: dict, paths: Paths, name: str, results: list[EvalResult]) -> ModelCardData:
    return ModelCardData(
        base_model=paths.show(plan.recipe.student), tags=TAGS, datasets=_hub_datasets(plan) or None,
        library_name="transformers", pipeline_tag="text-generation",
        model_name=name if results else None, eval_results=results or None,
    )


def merge_steps(plan: Plan) -> list[Step]:
    """The step that made every MoT round's student (its merge, or its choice), in round order."""
    return plan.round_students()


def _branch_rows(plan: Plan, merge: Step, metrics: dict) -> list[str]:
    row = next((r for r in metrics["mot"] if r["round"] == merge.round), {})
    training = {(t["round"], t["name"]): t for t in metrics.get("training") or []}
    lines = ["| teacher | steps | final train loss | tokens trained | accuracy |", "|---|---|---|---|---|"]
    for branch in merge.spec.branches:
        t = training.get((merge.round, branch.teacher.name), {})
        evaluation = (row.get("branches") or {}).get(branch.teacher.name) or {}
        accuracy, loss = evaluation.get("accuracy"), t.get("final_train_loss")
        lines.append(f"| {branch.teacher.name} | {t.get('steps', '–')} | {'–' if loss is None else f'{loss:.4f}'} | "
                     f"{t.get('tokens_trained', '–')} | "
                     f"{'–' if accuracy is None else f'{100 * accuracy:.1f}%' + _slice_accuracies(evaluation)} |")
    return lines


def _chosen(step: Step, metrics: dict) -> list[str]:
    """The line on the candidate a round chose, with every candidate's validation accuracy."""
    rows = [row for row in metrics.get("candidates") or [] if row["round"] == step.round]
    chosen = next((row["candidate"] for row in rows if row["chosen"]), None)
    if not chosen:
        return []
    scores = ", ".join(f"{row['candidate']} {_percent(row['validation']['accuracy'])}" for row in rows)
    return [f"- merge: candidate {chosen}, the most accurate on validation ({scores})"]


def round_card(plan: Plan, merge: Step, metrics: dict) -> ModelCard:
    """The card of one round's merged model: its round, its parent and its branches."""
    paths = Paths(plan)
    row = next((r for r in metrics["mot"] if r["round"] == merge.round), {})
    parent = paths.show(merge.spec.student)
    name = f"{plan.recipe.run_dir.name} round {merge.round}"
    data = _front_matter(plan, metrics, paths, name, _eval_results(metrics, paths, [merge.round], False))
    accuracy = row.get("accuracy")
    body = [f"# {name}", "",
            f"Round {merge.round} of {plan.recipe.mot.rounds} of a Merge-of-Thought distillation (mot-plugin): "
            f"{len(merge.spec.branches)} Axolotl SFT branches, one per teacher, each started from the parent and "
            f"trained {merge.spec.branches[0].max_steps} steps; {_merged_by(plan)} merged them "
            f"into this model.", "",
            f"- round: {merge.round}", f"- parent: `{parent}`",
            f"- accuracy: {'not evaluated' if accuracy is None else f'{100 * accuracy:.1f}%' + _slice_accuracies(row)}",
            *_chosen(merge, metrics), "",
            "## Branches", "", *_branch_rows(plan, merge, metrics)]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")


def _data_section(plan: Plan, paths: Paths) -> list[str]:
    hashes = read_json(plan.recipe.run_dir / HASHES_FILE) or {}
    if not hashes:
        return []
    lines = ["", "## Data", "", "| file | bytes | sha256 |", "|---|---|---|"]
    lines += [f"| `{paths.show(p)}` | {e['size']} | `{e['sha256']}` |" for p, e in sorted(hashes.items())]
    provenance = {p: e["provenance"] for p, e in sorted(hashes.items()) if e.get("provenance")}
    if provenance:
        lines += ["", "Teacher provenance (what `mot data generate` recorded):", "",
                  "| file | model | endpoint | temperature | max tokens | date | prompts sha256 |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| `{paths.show(p)}` | {v.get('model')} | {v.get('endpoint')} | {v.get('temperature')} | "
                  f"{v.get('max_tokens')} | {v.get('date')} | `{str(v.get('prompts_sha256'))[:16]}` |"
                  for p, v in provenance.items()]
    return lines


def _environment_section(plan: Plan, metrics: dict) -> list[str]:
    env = read_json(plan.recipe.run_dir / ENVIRONMENT_FILE) or {}
    rounds, baselines = metrics["mot"], metrics["baselines"].values()
    wall = sum(r["seconds"] or 0 for r in rounds) + sum(b["seconds"] or 0 for b in baselines)
    lines = ["", "## Compute", "",
             f"- MoT: {rounds[-1]['cumulative_branch_steps']} branch-steps, {rounds[-1]['cumulative_tokens_trained']} "
             f"tokens trained",
             f"- baselines: {sum(b['branch_steps'] for b in baselines)} branch-steps, "
             f"{sum(b['tokens_trained'] for b in baselines)} tokens trained",
             f"- wall time of all steps: {wall:.0f} s"]
    hw = env.get("hardware")
    if hw:
        gpus = ", ".join(hw.get("gpus") or []) or "none"
        lines.append(f"- hardware: {hw.get('os')} {hw.get('machine')}, {hw.get('cpu_cores')} CPU cores, GPUs: {gpus}")
    versions = env.get("versions")
    if versions:
        lines += ["", "## Versions", "", *(f"- {k}: {v or 'not installed'}" for k, v in versions.items()),
                  f"- python: {env.get('python')}"]
    return lines


def _recipe_text(plan: Plan, paths: Paths) -> str:
    source = plan.recipe.run_dir / SOURCE_FILE
    if source.is_file():
        return source.read_text()
    text = (plan.recipe.run_dir / RECIPE_FILE).read_text()
    for resolved, written in sorted(paths.written.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(resolved, written)
    return text


def final_card(plan: Plan, metrics: dict, plot: str | None) -> ModelCard:
    """The final student's card: results per round and baseline, the recipe, data, compute, versions."""
    paths = Paths(plan)
    final = final_step(plan)
    name = f"{plan.recipe.run_dir.name}"
    results = _eval_results(metrics, paths, [r["round"] for r in metrics["mot"]], True)
    data = _front_matter(plan, metrics, paths, name, results)
    shown = {**metrics, "run_dir": name, "student": paths.show(metrics["student"]),
             "eval": {**metrics["eval"], "data": paths.show(metrics["eval"]["data"])} if metrics.get("eval") else None}
    report = render_markdown(shown, plot).split("\n", 1)[1]
    body = [f"# {name}", "",
            f"Distilled with Merge-of-Thought (mot-plugin) from `{paths.show(plan.recipe.student)}`: each of "
            f"{plan.recipe.mot.rounds} rounds, one Axolotl SFT branch per teacher "
            f"({', '.join(metrics['teachers'])}) started from the current student and "
            f"{_merged_by(plan)} merged them. This is round {final.round}'s merged model.", "",
            "## Last round's branches", "", *_branch_rows(plan, final, metrics),
            report, *_data_section(plan, paths), *_environment_section(plan, metrics),
            "", "## Recipe", "", "```yaml", _recipe_text(plan, paths).rstrip(), "```"]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")


def write_cards(plan: Plan, metrics: dict) -> list[Path]:
    """Write a card into every round's merged model (the last: the final card, with the plot when the
    run directory has one); return the cards written."""
    written = []
    merges = merge_steps(plan)
    final = final_step(plan)
    for merge in merges:
        if not merge.output_dir.is_dir():
            continue
        if merge.id == final.id:
            plot = None
            if (plan.recipe.run_dir / PLOT).is_file():
                shutil.copyfile(plan.recipe.run_dir / PLOT, merge.output_dir / PLOT)
                plot = PLOT
            card = final_card(plan, metrics, plot)
        else:
            card = round_card(plan, merge, metrics)
        write_text(merge.output_dir / CARD, str(card))
        written.append(merge.output_dir / CARD)
    return written
