"""`mot check`: everything a recipe would execute, read, write and contact, found by reading it
(nothing of the recipe is imported or run), with the findings a reader should weigh marked risky."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mot_plugin.axolotl_config import HUB_KEYS
from mot_plugin.recipe import Recipe

KINDS = {
    "plugin": "imports a Python module as a MoT plugin (mot.plugins)",
    "axolotl-plugin": "imports a Python class into every branch (Axolotl plugins)",
    "dataset-code": "a dotted dataset type: Axolotl imports that module to format the data",
    "remote-code": "trust_remote_code: runs the model's or dataset's own Python from the hub",
    "shell": "shell lines run in every Slurm job",
    "hub": "a hub model or dataset without a pinned revision (its content can change)",
    "push": "uploads to the Hugging Face hub",
    "tracker": "sends metrics to an experiment tracker",
    "ray": "connects to a Ray cluster",
    "url": "a URL",
    "outside-path": "reads or writes outside the recipe's folder and the working directory",
}
"""Kinds of risky findings (`mot check --allow KIND`)."""
SECTIONS = ("executes", "reads", "writes", "contacts")
TRACKER_KEYS = ("use_wandb", "wandb_project", "wandb_entity", "use_mlflow", "mlflow_tracking_uri",
                "mlflow_experiment_name", "use_comet", "comet_project_name", "comet_api_key", "swanlab_project",
                "use_tensorboard")
URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


@dataclass(frozen=True)
class Finding:
    section: str
    kind: str | None
    """A key of KINDS when the finding is risky; None when it is only listed."""
    key: str
    value: str
    note: str = ""


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


def find(recipe: Recipe, folder: Path, written: dict[str, Any] | None = None) -> list[Finding]:
    """Every finding of `recipe`, whose paths are judged against `folder` (the recipe's folder) and,
    for those the recipe's text (`written`: its YAML data) gives relative, the working directory."""
    written = dict(_walk(written or {}, ""))
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
        elif isinstance(value, str) and URL.match(value) and not key.startswith("mot.launch.ray"):
            out.append(Finding("contacts", "url", key, value))
    revision = recipe.axolotl.get("revision_of_model")
    for key in ("base_model", "tokenizer_config", "lora_model_dir"):
        value = recipe.axolotl.get(key)
        if not value:
            continue
        if Path(value).is_absolute():
            out.append(_local("reads", key, value, folder, written))
        elif key == "base_model" and revision:
            out.append(Finding("contacts", None, key, value, f"hub, revision {revision}"))
        else:
            out.append(Finding("contacts", "hub", key, value, "hub, no revision pinned"))
    for i, teacher in enumerate(mot.teachers):
        for j, entry in enumerate(teacher.datasets):
            where = f"mot.teachers.{i}.datasets.{j}"
            kind = entry.get("type")
            if isinstance(kind, str) and "." in kind:
                out.append(Finding("executes", "dataset-code", f"{where}.type", kind))
            path = entry.get("path")
            if not isinstance(path, str):
                continue
            if Path(path).is_absolute():
                out.append(_local("reads", f"{where}.path", path, folder, written))
            elif entry.get("revision"):
                out.append(Finding("contacts", None, f"{where}.path", path, f"hub dataset, revision {entry['revision']}"))
            else:
                out.append(Finding("contacts", "hub", f"{where}.path", path, "hub dataset, no revision pinned"))
    if mot.eval:
        out.append(_local("reads", "mot.eval.data", mot.eval.data, folder, written))
    if mot.published:
        out.append(_local("reads", "mot.published", mot.published, folder, written))
    if recipe.validation:
        out.append(_local("reads", "mot.eval.validation", recipe.validation, folder, written))
    out.append(_local("writes", "mot.run_dir", str(recipe.run_dir), folder, written))
    launch = mot.launch
    if launch.launcher == "ray":
        from mot_plugin.builtin.ray_launcher import settings_of

        address = settings_of(recipe).address
        out.append(Finding("contacts", "ray", "mot.launch.ray.address", address) if address
                   else Finding("executes", None, "mot.launch.launcher", "ray", "a local Ray cluster on this machine"))
    if launch.launcher == "slurm":
        from mot_plugin.builtin.slurm_launcher import settings_of as slurm_settings

        slurm = slurm_settings(recipe)
        out += [Finding("executes", "shell", f"mot.launch.slurm.setup.{i}", line) for i, line in enumerate(slurm.setup)]
        out += [Finding("executes", None, "mot.launch.slurm.sbatch_args", " ".join(slurm.sbatch_args))]
    return out


def job_script(recipe: Recipe) -> str | None:
    """The batch script of the recipe's first branch, as the Slurm launcher would write it."""
    if recipe.mot.launch.launcher != "slurm":
        return None
    from mot_plugin.builtin import slurm_launcher
    from mot_plugin.planner import plan_run
    from mot_plugin.plugins import plugin_manager

    plan = plan_run(recipe, plugin_manager(()).hook)
    step = next(s for s in plan.steps if s.kind == "branch")
    return slurm_launcher.job_script(recipe, step, Path.cwd(), slurm_launcher.job_env())


def risky(findings: list[Finding], allowed: tuple[str, ...]) -> list[Finding]:
    return [f for f in findings if f.kind and f.kind not in allowed]
