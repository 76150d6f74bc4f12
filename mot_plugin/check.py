"""`mot check`: everything a recipe would execute, read, write and contact, found by reading it
(nothing of the recipe is imported or run), with the findings a reader should weigh marked risky."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from mot_plugin.axolotl_config import HUB_KEYS
from mot_plugin.findings import Description, Finding
from mot_plugin.recipe import Recipe
from mot_plugin.recipe.walk import dataset_inputs, eval_inputs, model_inputs, named

if TYPE_CHECKING:
    from mot_plugin.registry import Registry

KINDS = {
    "plugin": "imports a Python module as a MoT plugin (mot.plugins)",
    "axolotl-plugin": "imports a Python class into every branch (Axolotl plugins)",
    "dataset-code": "a dotted dataset type: Axolotl imports that module to format the data",
    "remote-code": "trust_remote_code: runs the model's or dataset's own Python from the hub",
    "hub": "a hub model or dataset without a pinned revision (its content can change)",
    "push": "uploads to the Hugging Face hub",
    "tracker": "sends metrics to an experiment tracker",
    "url": "a URL",
    "outside-path": "reads or writes outside the recipe's folder and the working directory",
}
"""Kinds of risky findings (`mot check --allow KIND`); registered entries add theirs (`risks`)."""
TRACKER_KEYS = ("use_wandb", "wandb_project", "wandb_entity", "use_mlflow", "mlflow_tracking_uri",
                "mlflow_experiment_name", "use_comet", "comet_project_name", "comet_api_key", "swanlab_project",
                "use_tensorboard")
URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


def _walk(value: Any, key: str) -> Iterator[tuple[str, Any]]:
    """Every (dotted key, value) in nested recipe data."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{key}.{i}")
    else:
        yield key, value


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _axolotl_blocks(recipe: Recipe) -> list[tuple[str, dict]]:
    """The shared Axolotl keys and each teacher's overrides, with the key prefix that names them."""
    return [("", recipe.axolotl)] + [(f"mot.teachers.{i}.overrides.", t.overrides)
                                     for i, t in enumerate(recipe.mot.teachers)]


def below_working_directory(written: Any) -> bool:
    """A path the recipe writes relative, without `..` or a hidden folder (`.ssh`): it stays below the
    directory `mot` runs in, which the user chose."""
    if not isinstance(written, str) or not written or written.startswith(("/", "~")):
        return False
    return not any(part == ".." or part.startswith(".") for part in Path(written).parts)


def _local(section: str, key: str, path: str, folder: Path, written: dict[str, Any]) -> Finding:
    resolved = Path(path).expanduser().absolute()
    if _inside(resolved, folder):
        return Finding(section, None, key, path)
    if below_working_directory(written.get(key)):
        return Finding(section, None, key, path, "below the working directory")
    return Finding(section, "outside-path", key, path, f"outside {folder} and the working directory")


def registry() -> "Registry":
    """The built-in and installed plugins' entries (a recipe's own `mot.plugins` are not imported)."""
    from mot_plugin.plugins import plugin_manager
    from mot_plugin.registry import collect

    return collect(plugin_manager(()).hook)


def kinds(entries: "Registry | None" = None) -> dict[str, str]:
    """Every kind of risky finding, with what it means: KINDS and the registered entries' own."""
    return {**KINDS, **(entries or registry()).risks()}


def find(recipe: Recipe, folder: Path, written: dict[str, Any] | None = None,
         entries: "Registry | None" = None) -> list[Finding]:
    """Every finding of `recipe`, whose paths are judged against `folder` (the recipe's folder) and,
    for those the recipe's text (`written`: its YAML data) gives relative, the working directory;
    the selected launcher's, merge executors' and eval backend's own findings last."""
    written = dict(_walk(written or {}, ""))
    selected = (entries or registry()).selected(recipe)
    own = [f for entry, settings in selected if entry.findings for f in entry.findings(recipe, settings)]
    reported = {f.key for f in own}
    mot, out = recipe.mot, []
    out += [Finding("executes", "plugin", "mot.plugins", name) for name in mot.plugins]
    for prefix, block in _axolotl_blocks(recipe):
        out += [Finding("executes", "axolotl-plugin", f"{prefix}plugins", str(p)) for p in block.get("plugins") or []]
        for key in TRACKER_KEYS:
            if block.get(key):
                out.append(Finding("contacts", "tracker", prefix + key, str(block[key])))
        for key in HUB_KEYS:
            if block.get(key) and key != "hub_strategy":
                out.append(Finding("contacts", "push", prefix + key, str(block[key])))
        if isinstance(block.get("deepspeed"), str):
            out.append(_local("reads", f"{prefix}deepspeed", block["deepspeed"], folder, written))
    data = recipe.to_dict()
    for key, value in _walk(data, ""):
        if key.rsplit(".", 1)[-1] == "trust_remote_code" and value:
            out.append(Finding("executes", "remote-code", key, str(value)))
        elif isinstance(value, str) and URL.match(value) and key not in reported:
            out.append(Finding("contacts", "url", key, value))
    revision = recipe.axolotl.get("revision_of_model")
    for found in named(model_inputs(data)):
        if found.local:
            out.append(_local("reads", found.key, found.value, folder, written))
        elif found.key == "base_model" and revision:
            out.append(Finding("contacts", None, found.key, found.value, f"hub, revision {revision}"))
        else:
            out.append(Finding("contacts", "hub", found.key, found.value, "hub, no revision pinned"))
    for found in dataset_inputs(data):
        where, entry = found.key.removesuffix(".path"), found.entry or {}
        kind = entry.get("type")
        if isinstance(kind, str) and "." in kind:
            out.append(Finding("executes", "dataset-code", f"{where}.type", kind))
        if not isinstance(found.value, str):
            continue
        if found.local:
            out.append(_local("reads", found.key, found.value, folder, written))
        elif entry.get("revision"):
            out.append(Finding("contacts", None, found.key, found.value, f"hub dataset, revision {entry['revision']}"))
        else:
            out.append(Finding("contacts", "hub", found.key, found.value, "hub dataset, no revision pinned"))
    out += [_local("reads", found.key, found.value, folder, written) for found in named(eval_inputs(data))]
    if mot.published:
        out.append(_local("reads", "mot.published", mot.published, folder, written))
    out.append(_local("writes", "mot.run_dir", str(recipe.run_dir), folder, written))
    return out + own


def describe(recipe: Recipe, entries: "Registry | None" = None) -> list[Description]:
    """What the selected launcher and merge executors will run (`descriptions` of the recipe's plan)."""
    from mot_plugin.planner import plan_run
    from mot_plugin.plugins import plugin_manager

    entries = entries or registry()
    if not any(getattr(entry, "describe", None) for entry, _ in entries.selected(recipe)):
        return []
    return descriptions(plan_run(recipe, plugin_manager(()).hook), entries)


def descriptions(plan: Any, entries: "Registry") -> list[Description]:
    """The launcher's description of the plan's first branch, and each merge executor's of its
    first merge (for `mot plan` and `mot check`)."""
    from mot_plugin.registry import Launcher, MergeExecutor
    from mot_plugin.steps import BranchSpec, MergeSpec

    out, seen = [], set()
    launcher = plan.recipe.mot.launch.launcher
    branch = next((s for s in plan.steps if isinstance(s.spec, BranchSpec)), None)
    if branch is not None and launcher in entries.entries[Launcher]:
        entry, settings = entries.launcher(plan.recipe)
        if entry.describe is not None:
            out.append(entry.describe(plan.recipe, branch, settings))
    for step in (s for s in plan.steps if isinstance(s.spec, MergeSpec)):
        recipe = plan.recipe.with_merge(step.spec.candidate)
        if recipe.mot.merge.executor not in entries.entries[MergeExecutor]:
            continue
        entry, settings = entries.merge_executor(recipe)
        if entry.describe is not None and entry.name not in seen:
            seen.add(entry.name)
            out.append(entry.describe(recipe, step, settings))
    return out


def risky(findings: list[Finding], allowed: tuple[str, ...]) -> list[Finding]:
    return [f for f in findings if f.kind and f.kind not in allowed]
