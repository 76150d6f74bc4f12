"""Named launchers, merge executors, baselines and eval backends, registered by plugins.

Every plugin (the built-ins too) may implement `mot_register(register)` and call `register(...)`
with a `Launcher`, `MergeExecutor`, `Baseline` or `EvalBackend`. The recipe selects each by name
(`launch.launcher`, `merge.executor`, `baselines`, `eval.backend`); each entry's own `settings`
model validates its own block of the recipe (`launch.<name>`, `merge.<name>`, `eval.<name>`, a
baseline's mapping in `baselines`). `mot_plugin.builtin.selected.Selected` runs what the recipe
selected unless a plugin's hook returned first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, ConfigDict, ValidationError

from mot_plugin.errors import validation_message
from mot_plugin.recipe import Recipe, RecipeError

if TYPE_CHECKING:
    import pluggy

    from mot_plugin.findings import Description, Finding
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
    describe: Callable[[Recipe, "Step", Any], "Description"] | None = None
    """How the first branch will be launched (a job script), shown by `mot plan` and `mot check`."""
    findings: Callable[[Recipe, Any], list["Finding"]] | None = None
    """What the launcher executes or contacts beyond the branch itself, for `mot check`."""
    risks: dict[str, str] = field(default_factory=dict)
    """The kinds of risky finding it reports, each with what it means (`mot check --allow KIND`)."""


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
    sizes: Callable[[Recipe, "MergeSpec", Any], "MergeSizes"] | None = None
    """What a merge reads and writes (`MergeSizes`), for the checkpoint I/O `mot plan` shows
    (without it, `mot plan` says the I/O is unknown)."""
    describe: Callable[[Recipe, "Step", Any], "Description"] | None = None
    """What the first merge will run, shown by `mot plan` and `mot check`."""
    findings: Callable[[Recipe, Any], list["Finding"]] | None = None
    """What the executor executes or contacts beyond the merge itself, for `mot check`."""
    risks: dict[str, str] = field(default_factory=dict)
    """The kinds of risky finding it reports, each with what it means (`mot check --allow KIND`)."""


@dataclass(frozen=True)
class MergeSizes:
    """What one merge reads and writes, as its executor runs it: `inputs` (paths of the checkpoints and
    adapters it reads), the merged weights in `out_dtype`, and `copies` full copies of the student in
    `copy_dtype` written and read back on the way (mergekit's merge of each adapter into the student)."""

    inputs: list[str]
    out_dtype: str
    copies: int = 0
    copy_dtype: str | None = None
    copies_are: str = "copies of the student"
    """What the copies are, in words, for `mot plan`'s disk line (`mergekit's LoRA merge cache`)."""


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
    findings: Callable[[Recipe, Any], list["Finding"]] | None = None
    """What the backend executes or contacts beyond the evaluation itself, for `mot check`."""
    risks: dict[str, str] = field(default_factory=dict)
    """The kinds of risky finding it reports, each with what it means (`mot check --allow KIND`)."""


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

    def selected(self, recipe: Recipe) -> list[tuple[Entry, Any]]:
        """The launcher, every merge's executor (each candidate's) and the eval backend the recipe
        selects, with their settings, each once; a name no entry is registered under is skipped (a
        recipe plugin's, which `mot check` does not import)."""
        picks = [(Launcher, recipe.mot.launch.launcher, lambda: self.launcher(recipe))]
        for name, _ in recipe.merges():
            merging = recipe.with_merge(name)
            picks.append((MergeExecutor, merging.mot.merge.executor, lambda r=merging: self.merge_executor(r)))
        if recipe.mot.eval is not None:
            picks.append((EvalBackend, recipe.mot.eval.backend, lambda: self.eval_backend(recipe)))
        chosen: list[tuple[Entry, Any]] = []
        for kind, name, pick in picks:
            found = pick() if name in self.entries[kind] else None
            if found is not None and found not in chosen:
                chosen.append(found)
        return chosen

    def risks(self) -> dict[str, str]:
        """Every kind of risky finding the registered entries report, with what it means."""
        return {kind: meaning for entries in self.entries.values() for entry in entries.values()
                for kind, meaning in getattr(entry, "risks", {}).items()}

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
