"""`Selected`: the built-in implementation of the execution hooks, and of `mot_merge_config`: what the
recipe selected from the registry (`mot_plugin.registry`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mot_plugin.hookspecs import hookimpl
from mot_plugin.recipe import Recipe
from mot_plugin.registry import Registry, collect

if TYPE_CHECKING:
    import pluggy

    from mot_plugin.results import BranchResult, MergeResult
    from mot_plugin.steps import MergeSpec, Step


class Selected:
    """The built-in implementation of the execution hooks, and of `mot_merge_config`: what the recipe
    selected from the registry. Registered by the plugin manager, after every other plugin."""

    def __init__(self, hook: "pluggy.HookRelay"):
        self.hook = hook

    @property
    def registry(self) -> Registry:
        """Collected on each use (cheap): a plugin registered later is seen too."""
        return collect(self.hook)

    @hookimpl(tryfirst=True)
    def mot_check_recipe(self, recipe: Recipe) -> None:
        """Every registered entry's block is valid; the selected entries accept the recipe."""
        self.registry.check(recipe)

    @hookimpl(trylast=True)
    def mot_run_branch(self, recipe: Recipe, step: "Step") -> "BranchResult | dict":
        launcher, settings = self.registry.launcher(recipe)
        return launcher.run_branch(recipe, step, settings)

    @hookimpl(trylast=True)
    def mot_merge_config(self, recipe: Recipe, merge: "MergeSpec") -> dict:
        executor, settings = self.registry.merge_executor(recipe)
        return executor.config(recipe, merge, settings)

    @hookimpl(trylast=True)
    def mot_run_merge(self, recipe: Recipe, step: "Step") -> "MergeResult | dict":
        """The merge with its candidate's settings; with `weights: validation`, its weights resolved
        first (`mot_plugin.weights`)."""
        from mot_plugin.results import parse_result
        from mot_plugin.weights import resolve_weights

        recipe = recipe.with_merge(step.spec.candidate)
        executor, settings = self.registry.merge_executor(recipe)
        if not step.spec.weights_from:
            return executor.run(recipe, step, settings)
        step, weights = resolve_weights(recipe, step, self.hook)
        result = parse_result("merge", executor.run(recipe, step, settings), step.id)
        return result.model_copy(update={"weights": weights})
