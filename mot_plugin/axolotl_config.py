"""The Axolotl side of branch configs: the keys mot owns, and Axolotl's own validation.

Keys mot replaces or drops are announced by `mot plan` (one note each), never changed silently.
Every distinct branch config is validated with Axolotl's `validate_config` before anything runs;
Axolotl drops keys no schema declares, so unknown keys are found here, against Axolotl's schema and
the input models of the plugins the config lists. Axolotl is imported lazily (torch, transformers).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import importlib
import json
import logging
import os
import re
from contextlib import contextmanager
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Iterator

from pydantic import ValidationError

from mot_plugin.atomic import check_inside, read_json, write_json
from mot_plugin.errors import first_error
from mot_plugin.recipe import SEED_DIR, Recipe, RecipeError
from mot_plugin.steps import BranchSpec, Step

if TYPE_CHECKING:
    from mot_plugin.planner import Plan

SAVE_NOTE = "a branch saves only its final weights (save_strategy: no)"
REPLACED = {
    "output_dir": "is replaced by each branch's own directory under mot.run_dir",
    "dataset_prepared_path": "is replaced by one directory per teacher under mot.run_dir/prepared",
    "num_epochs": "is replaced by max_steps {steps} (mot.steps_per_round)",
    "saves_per_epoch": f"is dropped: {SAVE_NOTE}",
    "save_steps": f"is dropped: {SAVE_NOTE}",
    "evals_per_epoch": "is dropped: branches train max_steps, not epochs (eval_steps still works)",
}
"""Recipe keys mot replaces in every branch config, with the note `mot plan` prints."""
SCHEDULE_KEYS = ("num_epochs", "saves_per_epoch", "save_steps", "evals_per_epoch")
"""Dropped from branch configs: `max_steps` and `save_strategy: no` take their place."""
HUB_KEYS = ("hub_model_id", "hub_strategy", "hub_revision", "push_to_hub", "hub_private_repo")
"""Kept in recipe.yaml, never given to a branch (a branch is not the model to push)."""
PER_RUN_KEYS = ("wandb_run_id",)
"""One tracker run id shared by every branch would make them overwrite each other."""
BRANCH_VARYING = ("base_model", "output_dir", "seed", "max_steps", "mot_step", "lora_model_dir",
                  "wandb_name", "mlflow_run_name")
"""Keys that differ between branches of one teacher without changing what Axolotl validates."""


def run_suffix(branch: BranchSpec) -> str:
    """`r01-<teacher>` for a MoT branch, the baseline's name (`single-<teacher>`, `union`, ...) otherwise."""
    return f"r{branch.round:02d}-{branch.teacher.name}" if branch.round else branch.step_id.split("/", 1)[1]


def run_name(recipe: Recipe, chosen: str | None) -> str:
    """The tracker name of the whole MoT run: `chosen` (the recipe's `wandb_name`, ...) or the run
    directory's name; one of several seeds (`RUN_DIR/seed-N`) adds `-seed-N`."""
    run_dir = recipe.run_dir
    if re.fullmatch(SEED_DIR.format(r"-?\d+"), run_dir.name):
        return f"{chosen or run_dir.parent.name}-{run_dir.name}"
    return chosen or run_dir.name


def _uses_wandb(config: dict[str, Any]) -> bool:
    return bool(config.get("wandb_project") or config.get("use_wandb"))


def _uses_mlflow(config: dict[str, Any]) -> bool:
    return bool(config.get("mlflow_experiment_name") or config.get("use_mlflow"))


def own_keys(config: dict[str, Any], recipe: Recipe, branch: BranchSpec) -> dict[str, Any]:
    """Apply what mot owns to a branch config (in place): drop per-epoch schedules, hub keys and
    shared run ids; name the branch's tracker runs; keep `lora_model_dir` only for branches that
    start from the recipe's student (later students already hold that adapter)."""
    for key in (*SCHEDULE_KEYS, *HUB_KEYS, *PER_RUN_KEYS):
        config.pop(key, None)
    if branch.student != recipe.student:
        config.pop("lora_model_dir", None)
    if _uses_wandb(config):
        run = run_name(recipe, config.get("wandb_name"))
        config["wandb_run_group"] = config.get("wandb_run_group") or run
        config["wandb_name"] = f"{run}-{run_suffix(branch)}"
    if _uses_mlflow(config):
        config["mlflow_run_name"] = f"{run_name(recipe, config.get('mlflow_run_name'))}-{run_suffix(branch)}"
    return config


def _places(recipe: Recipe) -> Iterator[tuple[str, dict[str, Any]]]:
    """Where a recipe sets Axolotl keys: the shared keys, then each teacher's overrides."""
    yield "", recipe.axolotl
    for i, teacher in enumerate(recipe.mot.teachers):
        yield f"mot.teachers.{i}.overrides.", teacher.overrides


def notes(recipe: Recipe) -> list[str]:
    """One line for each key mot replaces or drops, and for each tracker's per-branch run names."""
    lines = []
    steps = recipe.mot.steps_per_round
    for where, keys in _places(recipe):
        for key, value in keys.items():
            if value is None or value == "":
                continue
            if key in REPLACED:
                lines.append(f"{where}{key}: {value} {REPLACED[key].format(steps=steps)}")
            elif key == "save_strategy" and value != "no":
                lines.append(f"{where}{key}: {value} is replaced by no: {SAVE_NOTE}")
            elif key in HUB_KEYS:
                lines.append(f"{where}{key}: {value} is kept in recipe.yaml but given to no branch "
                             f"(`mot push RUN_DIR` uploads the final student)")
            elif key in PER_RUN_KEYS:
                lines.append(f"{where}{key}: {value} is given to no branch (each branch is its own run)")
    if recipe.axolotl.get("lora_model_dir"):
        lines.append(f"lora_model_dir: {recipe.axolotl['lora_model_dir']} starts round 1 and the baselines; "
                     f"later rounds start from the merged student, which holds it already")
    if _uses_wandb(recipe.axolotl):
        name = run_name(recipe, recipe.axolotl.get("wandb_name"))
        group = recipe.axolotl.get("wandb_run_group") or name
        lines.append(f"W&B: each branch is its own run, {name}-r01-<teacher>, ... (baselines {name}-single-<teacher>, "
                     f"{name}-union, ...), all in group {group}")
    if _uses_mlflow(recipe.axolotl):
        name = run_name(recipe, recipe.axolotl.get("mlflow_run_name"))
        lines.append(f"MLflow: each branch is its own run, {name}-r01-<teacher>, ... (baselines "
                     f"{name}-single-<teacher>, ...), in experiment {recipe.axolotl.get('mlflow_experiment_name')}")
    return lines


@contextmanager
def _quiet() -> Iterator[None]:
    """No log output (importing Axolotl logs warnings about CUDA kernels it cannot load)."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


@contextmanager
def _collect_warnings(into: list[str]) -> Iterator[None]:
    """Axolotl's warnings (deprecated keys, ...) go into `into` as `axolotl: <message>`, not to the console."""

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = f"axolotl: {record.getMessage().splitlines()[0]}"
            if message not in into:
                into.append(message)

    logger = logging.getLogger("axolotl")
    handler, propagate = Collect(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@cache
def _axolotl() -> SimpleNamespace:
    """What mot uses of Axolotl, imported on first use (10-30 s: it imports torch and transformers)."""
    os.environ.setdefault("AXOLOTL_DO_NOT_TRACK", "1")
    with _quiet():
        from axolotl.integrations.base import PluginManager, load_plugin
        from axolotl.utils.config import validate_config
        from axolotl.utils.dict import DictDefault
        from axolotl.utils.schemas.config import AxolotlInputConfig
    return SimpleNamespace(plugin_manager=PluginManager.get_instance, load_plugin=load_plugin,
                           validate_config=validate_config, DictDefault=DictDefault, schema=AxolotlInputConfig)


def _field_names(model) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        names |= {name, field.alias} | set(getattr(field.validation_alias, "choices", None) or [field.validation_alias])
    return {n for n in names if isinstance(n, str)}


@cache
def _known_keys(plugins: tuple[str, ...]) -> frozenset[str]:
    """Axolotl's config keys plus those the listed plugins declare (registering each plugin with
    Axolotl's plugin manager, which its validation reads); RecipeError if a plugin cannot be imported."""
    axolotl = _axolotl()
    known = _field_names(axolotl.schema)
    for name in plugins:
        try:
            args = axolotl.load_plugin(name).get_input_args()
            if args:
                module, cls = args.rsplit(".", 1)
                known |= _field_names(getattr(importlib.import_module(module), cls))
        except (ImportError, AttributeError) as err:
            raise RecipeError(f"plugins: cannot import Axolotl plugin {name!r} ({err})") from None
        if name not in axolotl.plugin_manager().plugins:
            axolotl.plugin_manager().register(name)
    return frozenset(known)


def _recipe_key(recipe: Recipe, branch: BranchSpec, loc: tuple) -> str:
    """The recipe key behind an Axolotl config location (`loc`: key, then list indices or fields)."""
    key, rest = str(loc[0]), "".join(f".{part}" for part in loc[1:])
    index = next((i for i, t in enumerate(recipe.mot.teachers) if t.name == branch.teacher.name), None)
    teacher = f"mot.teachers.{index}" if index is not None else "mot.teachers"
    if index is not None and key in branch.teacher.overrides:
        return f"{teacher}.overrides.{key}{rest}"
    if key == "datasets":
        return f"{teacher}.datasets{rest}"
    if key in recipe.axolotl:
        return f"{key}{rest}"
    return f"{key}{rest} (set by mot)"


def _check(recipe: Recipe, branch: BranchSpec, config: dict[str, Any], found: list[str]) -> None:
    """Validate one branch config with Axolotl; raise RecipeError naming the recipe key at fault."""
    src = recipe.source
    try:
        known = _known_keys(tuple(config.get("plugins") or ()))
    except RecipeError as err:
        raise RecipeError(f"{src}: {err}") from None
    for key, value in config.items():
        if key in known:
            continue
        where = _recipe_key(recipe, branch, (key,))
        if value is None:
            note = f"{where}: not an Axolotl key (empty, so ignored)"
            if note not in found:
                found.append(note)
            continue
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise RecipeError(f"{src}: {where}: not an Axolotl key{hint}")
    axolotl = _axolotl()
    try:
        with _collect_warnings(found):
            axolotl.validate_config(axolotl.DictDefault(copy.deepcopy(config)))
    except ValidationError as err:
        loc, message = first_error(err)
        if loc:
            raise RecipeError(f"{src}: {_recipe_key(recipe, branch, loc)}: {message}") from None
        raise RecipeError(f"{src}: Axolotl rejects the branch config of {branch.step_id}: {message}") from None
    except (ValueError, TypeError) as err:
        message = (str(err).strip() or type(err).__name__).splitlines()[0]
        raise RecipeError(f"{src}: Axolotl rejects the branch config of {branch.step_id}: {message}") from None


VALIDATED_FILE = "axolotl-validated.json"
"""In the run directory: the branch configs Axolotl validated (by hash, with the Axolotl version), and
the notes each gave; `mot plan` and `mot run` validate only configs not in it."""


def _axolotl_version() -> str | None:
    try:
        return version("axolotl")
    except PackageNotFoundError:
        return None


def check_branch_configs(plan: Plan, cache: Path | None = None,
                         echo: Callable[[str], None] = lambda line: None) -> list[str]:
    """Validate every distinct branch config of the plan with Axolotl (typically one per teacher);
    raise RecipeError on the first problem. Returns notes: Axolotl's warnings, and unknown keys left
    empty (harmless: Axolotl drops them). With `cache` (a file in the run directory), configs validated
    before by this Axolotl version are not validated again; `echo` says when Axolotl is imported."""
    shapes: dict[str, Step] = {}
    for step in plan.steps:
        if step.kind == "branch":
            shape = json.dumps({k: v for k, v in step.config.items() if k not in BRANCH_VARYING}, sort_keys=True,
                               default=str)
            shapes.setdefault(hashlib.sha256(shape.encode()).hexdigest(), step)
    axolotl_version = _axolotl_version()
    recorded = (read_json(cache) if cache else None) or {}
    known = recorded.get("validated", {}) if recorded.get("axolotl") == axolotl_version else {}
    todo = [key for key in shapes if key not in known]
    if todo:
        echo(f"Validating {len(todo)} branch config(s) with Axolotl (importing it takes 10-30 s) ...")
    found: list[str] = []
    for key, step in shapes.items():
        if key not in known:
            known[key] = []
            _check(plan.recipe, step.spec, step.config, known[key])
        found += [note for note in known[key] if note not in found]
    if cache and todo:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            write_json(check_inside(cache, plan.recipe.run_dir), {"axolotl": axolotl_version, "validated": known})
        except OSError:  # only a cache: a run directory that cannot be made is reported where it is used
            pass
    return found
