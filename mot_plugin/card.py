"""Model cards (huggingface_hub's `ModelCard`, rendered from the Jinja templates in
`mot_plugin/templates`): one for every round's merged model, and the final student's, which carries
the whole run.

Front matter: `base_model` (the hub id the student was made from: `mot_plugin.hub`; omitted, with a
note, when none is known), `base_model_relation` (`finetune` for round 1, `merge` after), `license`,
`tags`, `datasets` (teachers' hub datasets), `library_name` and a `model-index` with this model's own
accuracy on the evaluation set (`mot.eval.name`). Paths are shown as the recipe's author wrote them
(`recipe.source.yaml`), or relative to the run directory, never as this machine's. A mergekit merge's
`mergekit_config.yml` is rewritten the same way (models by hub id or relative to the run directory),
so that a stranger can replay it.
"""

from __future__ import annotations

import os
import shutil
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from mot_plugin.atomic import read_json, write_text
from mot_plugin.choices import final_step, merge_label
from mot_plugin.datahash import HASHES_FILE
from mot_plugin.environment import ENVIRONMENT_FILE
from mot_plugin.hub import Origin, card_license, student_origin
from mot_plugin.planner import Plan
from mot_plugin.report_md import _percent, render_markdown
from mot_plugin.rundir import RECIPE_FILE, SOURCE_FILE
from mot_plugin.steps import Step

TAGS = ["merge-of-thought", "distillation", "mergekit", "axolotl"]
CARD = "README.md"
PLOT = "accuracy.png"
MERGEKIT_CONFIG = "mergekit_config.yml"
"""What mergekit writes beside a merged model: the merge's config."""


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

    def metrics(self, metrics: dict) -> dict:
        """`metrics` with its input paths (student, evaluation problems) shown."""
        ev = metrics.get("eval")
        return {**metrics, "student": self.show(metrics["student"]),
                "eval": {**ev, "data": self.show(ev["data"])} if ev else None}

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


def eval_name(plan: Plan) -> str:
    """The evaluation set's name on the cards: `mot.eval.name`, else its file's name without extension."""
    ev = plan.recipe.mot.eval
    return (ev.name or Path(ev.data).stem) if ev else ""


def _own_results(plan: Plan, metrics: dict, round_: int) -> list[EvalResult]:
    """This model's own accuracy (the model-index holds nothing else), rounded to 4 digits."""
    row = next((r for r in metrics["mot"] if r["round"] == round_), {})
    if row.get("accuracy") is None:
        return []
    name = eval_name(plan)
    scores = [("accuracy", row["accuracy"]), *((f"accuracy on {tag}", entry.get("accuracy"))
                                               for tag, entry in (row.get("slices") or {}).items())]
    return [EvalResult(task_type="text-generation", task_name="Text generation", dataset_type=name,
                       dataset_name=name, metric_type="accuracy", metric_name=metric, metric_value=round(value, 4))
            for metric, value in scores if value is not None]


def _slice_accuracies(entry: dict) -> str:
    """` (skill 40.0%, kept 95.0%)`: an evaluation's accuracy per slice, or nothing without tags."""
    slices = ", ".join(f"{tag} {100 * s['accuracy']:.1f}%" for tag, s in (entry.get("slices") or {}).items()
                       if s.get("accuracy") is not None)
    return f" ({slices})" if slices else ""


def _card_data(plan: Plan, origin: Origin, round_: int, name: str, results: list[EvalResult]) -> ModelCardData:
    relation = ("finetune" if round_ == 1 else "merge") if origin.hub_id else None
    return ModelCardData(
        base_model=origin.hub_id, base_model_relation=relation, **card_license(origin.license), tags=TAGS,
        datasets=_hub_datasets(plan) or None, library_name="transformers", pipeline_tag="text-generation",
        model_name=name if results else None, eval_results=results or None,
    )


def _origin_line(plan: Plan, origin: Origin, paths: Paths) -> str:
    if origin.hub_id:
        return f"[{origin.hub_id}](https://huggingface.co/{origin.hub_id}) ({origin.how})"
    return f"`{paths.show(plan.recipe.student)}`; {origin.how}, so this card names no base_model"


def merge_steps(plan: Plan) -> list[Step]:
    """The step that made every MoT round's student (its merge, or its choice), in round order."""
    return plan.round_students()


def _branch_rows(plan: Plan, merge: Step, metrics: dict) -> list[dict[str, Any]]:
    row = next((r for r in metrics["mot"] if r["round"] == merge.round), {})
    training = {(t["round"], t["name"]): t for t in metrics.get("training") or []}
    rows = []
    for branch in merge.spec.branches:
        t = training.get((merge.round, branch.teacher.name), {})
        evaluation = (row.get("branches") or {}).get(branch.teacher.name) or {}
        loss = t.get("final_train_loss")
        rows.append({"teacher": branch.teacher.name, "steps": t.get("steps", "–"),
                     "loss": "–" if loss is None else f"{loss:.4f}", "tokens": t.get("tokens_trained", "–"),
                     "accuracy": _percent(evaluation.get("accuracy")) + _slice_accuracies(evaluation)})
    return rows


REPLAY = """
## Replaying the merge

`mergekit_config.yml` is this merge's mergekit config. It names models by hub id or by paths relative to the
run directory: in a copy of the run directory that kept its branches (`mot.keep_branches: true`), from inside it,

```bash
mergekit-yaml {config} OUT
```

writes this merge again into `OUT` (add `--lora-merge-cache DIR` for adapter branches).
"""


def portable_merge_config(plan: Plan, merge: Step) -> Path | None:
    """Rewrite the merge's `mergekit_config.yml` (which mergekit writes with this machine's absolute
    paths) with every local model relative to the run directory; hub ids stay. None without one."""
    path = merge.output_dir / MERGEKIT_CONFIG
    config = _read_yaml(path)
    if not isinstance(config, dict):
        return None

    def portable(reference: str) -> str:
        return "+".join(os.path.relpath(part, plan.recipe.run_dir) if Path(part).is_absolute() else part
                        for part in reference.split("+"))

    if isinstance(config.get("base_model"), str):
        config["base_model"] = portable(config["base_model"])
    for model in config.get("models") or []:
        if isinstance(model, dict) and isinstance(model.get("model"), str):
            model["model"] = portable(model["model"])
    write_text(path, yaml.safe_dump(config, sort_keys=False))
    return path


def _replay(plan: Plan, merge: Step) -> str:
    config = portable_merge_config(plan, merge)
    return REPLAY.format(config=config.relative_to(plan.recipe.run_dir)) if config else ""


def _parent(plan: Plan, merge: Step, paths: Paths, repo_id: str | None) -> str:
    """The model this round started from: the student, or the previous round (by its hub revision
    when the rounds are pushed as revisions of `repo_id`)."""
    if merge.round == 1:
        return f"the student `{paths.show(plan.recipe.student)}`"
    previous = merge.round - 1
    where = f"`{repo_id}` revision `round-{previous:02d}`" if repo_id else f"`{paths.show(merge.spec.student)}`"
    return f"round {previous}, {where}"


def _template(name: str) -> str:
    return (files("mot_plugin") / "templates" / name).read_text()


def _chosen(step: Step, metrics: dict) -> list[str]:
    """The line on the candidate a round chose, with every candidate's validation accuracy."""
    rows = [row for row in metrics.get("candidates") or [] if row["round"] == step.round]
    chosen = next((row["candidate"] for row in rows if row["chosen"]), None)
    if not chosen:
        return []
    scores = ", ".join(f"{row['candidate']} {_percent(row['validation']['accuracy'])}" for row in rows)
    return [f"- merge: candidate {chosen}, the most accurate on validation ({scores})"]


def round_card(plan: Plan, merge: Step, metrics: dict, repo_id: str | None = None) -> ModelCard:
    """The card of one round's merged model: its round, its parent and its branches. `repo_id`: the
    rounds are pushed as revisions of that repository (the parent is named by its revision)."""
    paths, origin = Paths(plan), student_origin(plan.recipe)
    row = next((r for r in metrics["mot"] if r["round"] == merge.round), {})
    title = f"{plan.recipe.run_dir.name} round {merge.round}"
    results = _own_results(plan, metrics, merge.round)
    return ModelCard.from_template(
        _card_data(plan, origin, merge.round, title, results), template_str=_template("round_card.md"),
        title=title, round=merge.round, rounds=plan.recipe.mot.rounds, branches=_branch_rows(plan, merge, metrics),
        steps=merge.spec.branches[0].max_steps, merged_by=_merged_by(plan), parent=_parent(plan, merge, paths, repo_id),
        origin=_origin_line(plan, origin, paths), eval_name=eval_name(plan) or "no evaluation set",
        accuracy=_percent(row.get("accuracy")) + _slice_accuracies(row) if plan.recipe.mot.eval else "not evaluated",
        chosen=_chosen(merge, metrics), replay=_replay(plan, merge))


def _data(plan: Plan, paths: Paths) -> tuple[list[dict], list[dict]]:
    """Every training file (bytes, sha256), and the teachers' provenance where recorded."""
    hashes = read_json(plan.recipe.run_dir / HASHES_FILE) or {}
    data = [{"file": paths.show(p), "size": e["size"], "sha256": e["sha256"]} for p, e in sorted(hashes.items())]
    provenance = [{"file": paths.show(p), **{k: v.get(k) for k in ("model", "endpoint", "temperature", "max_tokens",
                                                                  "date")},
                   "prompts": str(v.get("prompts_sha256"))[:16]}
                  for p, e in sorted(hashes.items()) if (v := e.get("provenance"))]
    return data, provenance


def _compute(metrics: dict) -> dict[str, Any]:
    rounds, baselines = metrics["mot"], list(metrics["baselines"].values())
    wall = sum(r["seconds"] or 0 for r in rounds) + sum(b["seconds"] or 0 for b in baselines)
    return {"branch_steps": rounds[-1]["cumulative_branch_steps"], "tokens": rounds[-1]["cumulative_tokens_trained"],
            "baseline_steps": sum(b["branch_steps"] for b in baselines),
            "baseline_tokens": sum(b["tokens_trained"] for b in baselines), "wall": f"{wall:.0f}"}


def _hardware(env: dict) -> str | None:
    hw = env.get("hardware")
    if not hw:
        return None
    gpus = ", ".join(hw.get("gpus") or []) or "none"
    return f"{hw.get('os')} {hw.get('machine')}, {hw.get('cpu_cores')} CPU cores, GPUs: {gpus}"


def _recipe_text(plan: Plan, paths: Paths) -> str:
    source = plan.recipe.run_dir / SOURCE_FILE
    if source.is_file():
        return source.read_text()
    text = (plan.recipe.run_dir / RECIPE_FILE).read_text()
    for resolved, written in sorted(paths.written.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(resolved, written)
    return text


def _results(metrics: dict, final_round: int) -> list[dict[str, str]]:
    """This model, the earlier rounds and the student, then every baseline: accuracy and interval."""
    def row(model: str, entry: dict) -> dict[str, str]:
        ci = entry.get("ci")
        return {"model": model, "accuracy": _percent(entry.get("accuracy")) + _slice_accuracies(entry),
                "interval": f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "–"}

    names = {final_round: f"this model (round {final_round})", 0: "the student (round 0)"}
    rows = [row(names.get(r["round"], f"round {r['round']}"), r) for r in reversed(metrics["mot"])
            if r["accuracy"] is not None]
    return rows + [row(f"baseline {name}", b) for name, b in metrics["baselines"].items() if b["accuracy"] is not None]


def final_card(plan: Plan, metrics: dict, plot: str | None, repo_id: str | None = None) -> ModelCard:
    """The final student's card: results per round and baseline, the recipe, data, compute, versions
    (`repo_id`: as in `round_card`)."""
    paths, origin = Paths(plan), student_origin(plan.recipe)
    final = final_step(plan)
    title = plan.recipe.run_dir.name
    shown = {**paths.metrics(metrics), "run_dir": title}
    data, provenance = _data(plan, paths)
    env = read_json(plan.recipe.run_dir / ENVIRONMENT_FILE) or {}
    return ModelCard.from_template(
        _card_data(plan, origin, final.round, title, _own_results(plan, metrics, final.round)),
        template_str=_template("final_card.md"), title=title, student=f"`{paths.show(plan.recipe.student)}`",
        rounds=plan.recipe.mot.rounds, teachers=", ".join(metrics["teachers"]), merged_by=_merged_by(plan),
        round=final.round, parent=_parent(plan, final, paths, repo_id), origin=_origin_line(plan, origin, paths),
        eval_name=eval_name(plan),
        results=_results(metrics, final.round) if plan.recipe.mot.eval else [],
        branches=_branch_rows(plan, final, metrics), replay=_replay(plan, final),
        report=render_markdown(shown, plot).split("\n", 1)[1], data=data, provenance=provenance,
        compute=_compute(metrics), hardware=_hardware(env), versions=env.get("versions"), python=env.get("python"),
        recipe=_recipe_text(plan, paths).rstrip())


def write_cards(plan: Plan, metrics: dict, repo_id: str | None = None) -> list[Path]:
    """Write a card into every round's merged model (the last: the final card, with the plot when the
    run directory has one) and make its mergekit config portable; return the cards written. `repo_id`:
    the rounds go to revisions of that hub repository (`mot push --revisions`)."""
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
            card = final_card(plan, metrics, plot, repo_id)
        else:
            card = round_card(plan, merge, metrics, repo_id)
        write_text(merge.output_dir / CARD, str(card))
        written.append(merge.output_dir / CARD)
    return written
