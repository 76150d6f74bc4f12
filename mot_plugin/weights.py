"""Merge weights from the branches' validation accuracy (`merge.weights: validation`).

Such a merge is planned as a template (`merge.template.yaml`, written with the teachers' weights):
once its branches' validation evaluations have finished, branch k's weight is its teacher's weight
times its accuracy, rescaled so the weights sum to the teachers' total (as for the teachers'
weights, methods that do not normalize keep their scale); the merge executor then writes its config
with those weights to `merge.yaml` beside the template, and merges as that file says.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from mot_plugin.atomic import read_json, write_text
from mot_plugin.errors import StepFailed
from mot_plugin.recipe import Recipe, dump_yaml
from mot_plugin.steps import Step

if TYPE_CHECKING:
    import pluggy

RESOLVED = "merge.yaml"
"""The config a `weights: validation` merge runs, written next to its template."""


def validation_weights(teachers: dict[str, float], accuracies: dict[str, float]) -> dict[str, float]:
    """Each teacher's weight times its branch's validation accuracy, rescaled to the teachers' total;
    the teachers' weights as they are when no branch scored."""
    scores = {name: weight * accuracies[name] for name, weight in teachers.items()}
    if sum(scores.values()) <= 0:
        return dict(teachers)
    scale = sum(teachers.values()) / sum(scores.values())
    return {name: round(score * scale, 6) for name, score in scores.items()}


def resolve_weights(recipe: Recipe, step: Step, hook: "pluggy.HookRelay") -> tuple[Step, dict[str, float]]:
    """The merge step as it runs: its branches weighted by validation accuracy, its config (from
    `mot_merge_config`, as planned) written to `merge.yaml`; and the weights."""
    accuracies = {}
    for teacher, marker in step.spec.weights_from.items():
        accuracy = ((read_json(marker) or {}).get("result") or {}).get("accuracy")
        if accuracy is None:
            raise StepFailed(f"{step.id} failed: no validation accuracy of branch {teacher} in {marker}")
        accuracies[teacher] = accuracy
    weights = validation_weights({b.teacher.name: b.teacher.weight for b in step.spec.branches}, accuracies)
    branches = tuple(replace(b, teacher=b.teacher.model_copy(update={"weight": weights[b.teacher.name]}))
                     for b in step.spec.branches)
    spec = replace(step.spec, branches=branches)
    config = hook.mot_merge_config(recipe=recipe, merge=spec)
    path = step.config_path.with_name(RESOLVED)
    write_text(path, f"# {step.id}: written by mot with the branches' validation accuracies as weights "
                     f"({', '.join(f'{t} {w:g}' for t, w in weights.items())}); the plan is {step.config_path.name}.\n"
                     + dump_yaml(config))
    return replace(step, spec=spec, config=config, config_path=path), weights
