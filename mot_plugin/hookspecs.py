"""The MoT hook specifications (pluggy project `mot`).

`mot_register` adds named launchers, merge executors, baselines and eval backends that a recipe
selects by name (`mot_plugin.registry`). Planning hooks return values and have no side effects; a plugin adjusts the built-in result with
a `wrapper=True` implementation (`config = yield; ...; return config`). Execution hooks are
first-result: the built-in implementation (`mot_plugin.builtin.selected.Selected`: what the recipe selected) is
`trylast`, so a plugin that returns a result takes the step over. A step's result is the model of
its kind in `mot_plugin.results` (or a dict of its fields, which the runner validates into that model).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from mot_plugin.recipe import Recipe
from mot_plugin.results import BranchResult, ChoiceResult, EvalMetrics, MergeResult, PrepareResult, StepResult
from mot_plugin.steps import BranchSpec, MergeSpec, Step

if TYPE_CHECKING:
    from mot_plugin.registry import Registry

PROJECT = "mot"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def mot_register(register: Registry) -> None:
    """Register launchers, merge executors, baselines and eval backends by name: call
    `register(Launcher(...))`, `register(MergeExecutor(...))`, `register(Baseline(...))` or
    `register(EvalBackend(...))` (`mot_plugin.registry`). No side effects; called when plugins load."""


@hookspec
def mot_check_recipe(recipe: Recipe) -> None:
    """Check the recipe before anything is planned; raise `RecipeError` (one line) on bad input."""


@hookspec(firstresult=True)
def mot_branch_config(recipe: Recipe, branch: BranchSpec) -> dict[str, Any]:
    """Return the complete Axolotl config (a dict) of one branch."""


@hookspec(firstresult=True)
def mot_merge_config(recipe: Recipe, merge: MergeSpec) -> dict[str, Any]:
    """Return the complete mergekit config (a dict) of one round's merge. For a merge candidate
    (`merge.candidate`), `recipe.mot.merge` holds that candidate's settings."""


@hookspec(firstresult=True)
def mot_prepare_data(recipe: Recipe, step: Step) -> PrepareResult | dict[str, Any]:
    """Tokenize one teacher's data into `step.output_dir` with the branch config at `step.config_path`
    (planned only when branches run in parallel). Raise on failure."""


@hookspec(firstresult=True)
def mot_run_branch(recipe: Recipe, step: Step) -> BranchResult | dict[str, Any]:
    """Train one branch from `step.config_path`, logging to `step.log_path`, weights into
    `step.output_dir`; return its result (steps, final train loss, tokens, runtime). Raise on failure."""


@hookspec(firstresult=True)
def mot_run_merge(recipe: Recipe, step: Step) -> MergeResult | dict[str, Any]:
    """Merge as `step.config_path` says into `step.output_dir`. Raise on failure. A merge candidate's
    settings are `recipe.with_merge(step.spec.candidate).mot.merge`."""


@hookspec(firstresult=True)
def mot_evaluate(recipe: Recipe, step: Step) -> EvalMetrics | dict[str, Any]:
    """Evaluate `step.spec.model` as `step.config` says (held-out problems, samples, tokens); write
    the samples under `step.output_dir`; return the metrics (accuracy, accuracy_std, ...)."""


@hookspec(firstresult=True)
def mot_choose(recipe: Recipe, step: Step) -> ChoiceResult | dict[str, Any]:
    """Choose one of a round's merge candidates (`step.config["candidates"]`: each one's name, merged
    model and validation evaluation's marker) and put its model at `step.output_dir`, the round's
    student; return the choice and every candidate's validation accuracy. Raise on failure."""


@hookspec
def mot_round_end(recipe: Recipe, round: int, student: Path, results: dict[str, StepResult]) -> None:
    """Called after each round (its merge, and its evaluation when the recipe evaluates; with a
    validation split, its evaluation on it or its choice among merge candidates, since its evaluations
    on the test set run at the end of the run):
    `student` is the merged model, `results` the round's step results (`mot_plugin.results` models)
    keyed by step id."""
