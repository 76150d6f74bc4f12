"""Named launchers, merge executors, baselines and eval backends, registered by plugins.

Every plugin (the built-ins too) may implement `mot_register(register)` and call `register(...)`
with a `Launcher`, `MergeExecutor`, `Baseline` or `EvalBackend`. The recipe selects each by name
(`launch.launcher`, `merge.executor`, `baselines`, `eval.backend`); each entry's own `settings`
model validates its own block of the recipe (`launch.<name>`, `merge.<name>`, `eval.<name>`, a
baseline's mapping in `baselines`). `Selected` is the built-in implementation of the execution
hooks: it runs what the recipe selected unless a plugin's hook returned first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, ConfigDict, ValidationError

from mot_plugin.hookspecs import hookimpl
from mot_plugin.recipe import Recipe, RecipeError, validation_message

if TYPE_CHECKING:
    import pluggy

    from mot_plugin.results import BranchResult, MergeResult
    from mot_plugin.steps import MergeSpec, Step


class NoSettings(BaseModel):
    """The settings of an entry that takes none: its block, if given, must be empty."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Launcher:
    """Where a branch trains (`launch.launcher: <name>`; settings in `launch.<name>`)."""

    name: str
    run_branch: Callable[[Recipe, "Step", Any], "BranchResult | dict"]
    """Train the branch of `step` (see `mot_run_branch`); return its `BranchResult`; raise `StepFailed`."""
    settings: type[BaseModel] = NoSettings
    check: Callable[[Recipe, Any], None] | None = None
    """Refuse a recipe this launcher cannot run here (raise `RecipeError`); called before planning."""
    describe: Callable[[Recipe, "Step", Any], list[str]] | None = None
    """Lines `mot plan` prints about how the first branch will be launched (a job script)."""


@dataclass(frozen=True)
class MergeExecutor:
    """How a merge runs (`merge.executor: <name>`; its own settings in `merge.<name>`). It reads the
    `merge:` block's method, parameters and dtypes and refuses, in `check`, what it cannot do."""

    name: str
    config: Callable[[Recipe, "MergeSpec", Any], dict]
    """The merge's config (written to `merge.yaml`: it must describe the merge as it runs)."""
    run: Callable[[Recipe, "Step", Any], "MergeResult | dict"]
    """Merge as `step.config_path` says into `step.output_dir`; return its `MergeResult`."""
    settings: type[BaseModel] = NoSettings
    check: Callable[[Recipe, Any], None] | None = None


@dataclass(frozen=True)
class Baseline:
    """A baseline lineage (`baselines: [<name>]` or `[{<name>: settings}]`) that plans its own steps."""

    name: str
    plan: Callable[[Any, Any], None]
    """`plan(lineage, settings)`: add the baseline's steps through `lineage` (`mot_plugin.planner.Lineage`)."""
    settings: type[BaseModel] = NoSettings


@dataclass(frozen=True)
class EvalBackend:
    """How evaluation generates answers (`eval.backend: <name>`; settings in `eval.<name>`)."""

    name: str
    generate: Callable[..., tuple[list[list[str]], list[list[int]]]]
    """`generate(model_dir, prompts, settings, *, n, batch_size, max_new_tokens, temperature, seed)`:
    `n` responses per prompt and their generated-token counts; mot grades them."""
    settings: type[BaseModel] = NoSettings
    check: Callable[[Recipe, Any], None] | None = None


Entry = Launcher | MergeExecutor | Baseline | EvalBackend
KINDS: dict[type, str] = {Launcher: "launcher", MergeExecutor: "merge executor", Baseline: "baseline",
                          EvalBackend: "eval backend"}


class Registry:
    """Every registered entry, by kind and name. Call it with an entry to register one."""

    def __init__(self) -> None:
        self.entries: dict[type, dict[str, Entry]] = {kind: {} for kind in KINDS}

    def __call__(self, entry: Entry) -> None:
        kind = type(entry)
        if kind not in KINDS:
            raise RecipeError(f"mot_register: cannot register {entry!r} (a Launcher, MergeExecutor, Baseline "
                              f"or EvalBackend from mot_plugin.registry)")
        if not (isinstance(entry.settings, type) and issubclass(entry.settings, BaseModel)):
            raise RecipeError(f"mot_register: {KINDS[kind]} {entry.name!r}: settings must be a pydantic model class")
        if entry.name in self.entries[kind]:
            raise RecipeError(f"mot_register: {KINDS[kind]} {entry.name!r} is registered twice")
        self.entries[kind][entry.name] = entry

    def get(self, kind: type, name: str, key: str) -> Entry:
        """The entry named `name`, or `RecipeError` at `key` listing the registered names."""
        try:
            return self.entries[kind][name]
        except KeyError:
            known = ", ".join(sorted(self.entries[kind])) or "none"
            raise RecipeError(f"{key}: unknown {KINDS[kind]} {name!r} (registered: {known})") from None

    # ---------------------------------------------------------------- what the recipe selects

    def launcher(self, recipe: Recipe) -> tuple[Launcher, Any]:
        launch = recipe.mot.launch
        entry = self.get(Launcher, launch.launcher, "mot.launch.launcher")
        return entry, self._settings(entry, (launch.model_extra or {}).get(entry.name), f"mot.launch.{entry.name}")

    def merge_executor(self, recipe: Recipe) -> tuple[MergeExecutor, Any]:
        merge = recipe.mot.merge
        entry = self.get(MergeExecutor, merge.executor, "mot.merge.executor")
        return entry, self._settings(entry, (merge.model_extra or {}).get(entry.name), f"mot.merge.{entry.name}")

    def eval_backend(self, recipe: Recipe) -> tuple[EvalBackend, Any] | None:
        settings = recipe.mot.eval
        if settings is None:
            return None
        entry = self.get(EvalBackend, settings.backend, "mot.eval.backend")
        return entry, self._settings(entry, (settings.model_extra or {}).get(entry.name), f"mot.eval.{entry.name}")

    def baselines(self, recipe: Recipe) -> list[tuple[Baseline, Any]]:
        chosen = []
        for i, item in enumerate(recipe.mot.baselines):
            name, block = (item, None) if isinstance(item, str) else next(iter(item.items()))
            entry = self.get(Baseline, name, f"mot.baselines.{i}")
            chosen.append((entry, self._settings(entry, block, f"mot.baselines.{i}.{name}")))
        return chosen

    def check(self, recipe: Recipe) -> None:
        """Validate every block of the recipe that belongs to an entry, refuse blocks no entry owns,
        and run the selected entries' own checks (each merge candidate's as its own merge)."""
        blocks = [("launch", Launcher, recipe.mot.launch), ("merge", MergeExecutor, recipe.mot.merge),
                  ("eval", EvalBackend, recipe.mot.eval)]
        blocks += [(f"merge.candidates.{i}", MergeExecutor, c) for i, c in enumerate(recipe.mot.merge.candidates)]
        for section, kind, model in blocks:
            for key, block in ((model.model_extra or {}).items() if model is not None else ()):
                if key not in self.entries[kind]:
                    raise RecipeError(f"mot.{section}.{key}: unknown key (no {KINDS[kind]} of that name is registered)")
                self._settings(self.entries[kind][key], block, f"mot.{section}.{key}")
        self.baselines(recipe)
        for entry, settings in filter(None, [self.launcher(recipe), self.eval_backend(recipe)]):
            if entry.check is not None:
                entry.check(recipe, settings)
        for i, (name, _) in enumerate(recipe.merges()):
            try:
                merging = recipe.with_merge(name)
                entry, settings = self.merge_executor(merging)
                if entry.check is not None:
                    entry.check(merging, settings)
            except RecipeError as err:
                if name is None:
                    raise
                message = str(err)
                key = f"mot.merge.candidates.{i}"
                raise RecipeError(key + message[len("mot.merge"):] if message.startswith("mot.merge.")
                                  else f"{key} ({name}): {message}") from None

    @staticmethod
    def _settings(entry: Entry, block: Any, key: str) -> Any:
        return validated(entry.settings, block, key, f"the settings of {KINDS[type(entry)]} {entry.name}")


def validated(model: type[BaseModel], block: Any, key: str, what: str = "settings") -> Any:
    """`block` (None: no settings given) as a `model`; `RecipeError` naming the key at fault."""
    if block is None:
        block = {}
    if not isinstance(block, dict):
        raise RecipeError(f"{key}: must be a mapping ({what}), not {block!r}")
    try:
        return model.model_validate(block)
    except ValidationError as err:
        raise RecipeError(validation_message(err, key)) from None


def collect(hook: "pluggy.HookRelay") -> Registry:
    """Every entry the plugins behind `hook` register."""
    registry = Registry()
    hook.mot_register(register=registry)
    return registry


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
