"""Built-in merge executor `mergekit` (`merge.executor: mergekit`, the default): mergekit configs checked
against mergekit's own method registry, and `mergekit-yaml` (run by this module's `main`, warm or cold:
see `mot_plugin.process.run_logged`).

Checkpoint I/O: mergekit streams tensors (each input is a memory-mapped safetensors file, read tensor
by tensor); it holds the inputs of the weight being merged and output shards of `mot.shard_size` until
a background thread has written them (`--async-write`); it writes shards of `mot.shard_size` plus an
index, in `out_dtype` (by default the dtype the branches train in), computing on the GPU when torch
sees one.

mergekit ignores unknown keys silently, so every method name and parameter is checked here before
anything runs, against the facts of mergekit's methods shipped as data (`mergekit_methods`): planning
does not import mergekit (it imports torch).

Adapter branches are merged through mergekit's `student+adapter` model references: mergekit merges
each adapter into a full copy of the student (PEFT's `merge_and_unload`, on the CPU, offline for a
local student) in `--lora-merge-cache`, which mot puts next to the merge and deletes afterwards.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from mot_plugin.atomic import remove_tree
from mot_plugin.builtin.mergekit_methods import check_value, facts
from mot_plugin.hookspecs import hookimpl
from mot_plugin.process import python_command, run_logged, warm_dir
from mot_plugin.recipe import Recipe, RecipeError
from mot_plugin.registry import MergeExecutor, MergeSizes
from mot_plugin.results import MergeResult
from mot_plugin.steps import MergeSpec, Step

# Files a linear (base-less) merge takes from the first branch, so the donor is deterministic
# (mergekit picks one from a set otherwise).
DONOR_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
               "generation_config.json")
ADAPTER_METHODS = ("linear", "task_arithmetic", "ties", "dare_ties", "dare_linear", "breadcrumbs", "breadcrumbs_ties",
                   "della", "della_linear", "sce", "ram", "ramplus_tl", "model_stock", "multislerp", "nuslerp", "karcher")
"""Methods that merge adapter branches: each was run with `student+adapter` references of two LoRA
adapters and gave finite full weights that keep untargeted tensors (tests/test_axolotl_recipes.py).
slerp, nearswap and arcee_fusion merge the student with a single model, passthrough takes one model."""
MERGE_MODULE = "mot_plugin.builtin.mergekit_merge"
"""What a merge step runs: `python -m MERGE_MODULE MERGE_YAML OUT ...` (`main` below)."""
LORA_CACHE = "lora-merge-cache"
"""mergekit's copies of the student with each adapter merged in, next to the merge's output."""


def uses_base_model(recipe: Recipe) -> bool:
    """Whether the round's student is mergekit's `base_model` (resolves `base_model: auto`)."""
    choice = recipe.mot.merge.base_model
    if choice != "auto":
        return choice == "student"
    return facts(recipe.mot.merge.method)["base"] == "required"


def out_dtype(recipe: Recipe) -> str:
    """`merge.out_dtype`, by default the dtype the branches train and save in, else `merge.dtype`."""
    merge = recipe.mot.merge
    return merge.out_dtype or recipe.train_dtype or merge.dtype


@hookimpl
def mot_register(register) -> None:
    register(MergeExecutor("mergekit", config=merge_config, run=run_merge, check=check_merge, sizes=sizes))


def check_merge(recipe: Recipe, settings: Any = None) -> None:
    """Method, parameters, per-teacher parameters and the number of inputs, as mergekit sees them."""
    merge = recipe.mot.merge
    method = facts(merge.method)
    for key, path in (("base_model", recipe.student), ("mot.run_dir", str(recipe.run_dir))):
        if "+" in path or "@" in path:
            raise RecipeError(f"{key}: {path} holds '+' or '@', which mergekit reads as an adapter or a revision")
    if recipe.adapter and merge.method not in ADAPTER_METHODS:
        raise RecipeError(f"mot.merge.method: {merge.method} cannot merge {recipe.adapter} adapter branches "
                          f"(methods that can: {', '.join(ADAPTER_METHODS)})")
    params = method["parameters"]
    policy = method["base"]
    if merge.base_model == "student" and policy == "forbidden":
        raise RecipeError(f"mot.merge.base_model: {merge.method} takes no base model")
    if merge.base_model == "none" and policy == "required":
        raise RecipeError(f"mot.merge.base_model: {merge.method} needs a base model (use student or auto)")
    for name, value in merge.parameters.items():
        _check_value(name, value, f"mot.merge.parameters.{name}", merge.method)
    for i, teacher in enumerate(recipe.mot.teachers):
        for name, value in teacher.merge_parameters.items():
            key = f"mot.teachers.{i}.merge_parameters.{name}"
            if name == "weight":
                raise RecipeError(f"{key}: set mot.teachers.{i}.weight instead")
            _check_value(name, value, key, merge.method)
            if params[name]["scope"] == "shared":
                raise RecipeError(f"{key}: a global parameter of {merge.method}; set it in mot.merge.parameters")
        if teacher.weight != 1.0 and "weight" not in params:
            raise RecipeError(f"mot.teachers.{i}.weight: {merge.method} takes no weights")
    for name, param in params.items():
        if param["required"] and param["scope"] == "shared" and name not in merge.parameters:
            raise RecipeError(f"mot.merge.parameters.{name}: required by {merge.method}")
    inputs = len(recipe.mot.teachers) + uses_base_model(recipe)
    low, high = method["min_inputs"], method["max_inputs"]
    if inputs < low or (high is not None and inputs > high):
        raise RecipeError(f"mot.teachers: {merge.method} merges {low} to {high if high is not None else 'any'} "
                          f"models, this recipe gives it {inputs}")


def _check_value(name: str, value: Any, key: str, method: str) -> None:
    """A valid value of the parameter, as mergekit validates it, and in its meaningful range."""
    check_value(name, value, key, method)
    low, high = RANGES.get(name, (None, None))
    if low is not None and isinstance(value, (int, float)) and not low < value <= high:
        raise RecipeError(f"{key}: {value!r} is out of range ({low}, {high}]")


RANGES = {"density": (0, 1)}
"""Parameters whose meaningful values mergekit does not check: a fraction of weights kept."""


def merge_config(recipe: Recipe, merge: MergeSpec, settings: Any = None) -> dict[str, Any]:
    """A plain mergekit YAML: `mergekit-yaml merge.yaml OUT` reproduces the merge as it is (adapter
    branches, as `student+adapter` references, also need `--lora-merge-cache DIR`)."""
    block = recipe.mot.merge
    weighted = "weight" in facts(block.method)["parameters"]
    models = []
    for branch in merge.branches:
        parameters = dict(branch.teacher.merge_parameters)
        if weighted:
            parameters["weight"] = branch.teacher.weight
        model = f"{merge.student}+{branch.output_dir}" if branch.adapter else str(branch.output_dir)
        models.append({"model": model, **({"parameters": parameters} if parameters else {})})
    config: dict[str, Any] = {"merge_method": block.method}
    if uses_base_model(recipe):
        config["base_model"] = merge.student
    config["models"] = models
    if block.parameters:
        config["parameters"] = dict(block.parameters)
    config["dtype"] = block.dtype
    config["out_dtype"] = out_dtype(recipe)
    return config


def sizes(recipe: Recipe, merge: MergeSpec, settings: Any = None) -> MergeSizes:
    """What the merge reads (the branches, the student as base model; an adapter branch: the student
    and the adapter, merged into a copy of the student in `merge.dtype` that is written and read back)
    and the dtype it writes."""
    inputs: list[str] = []
    for branch in merge.branches:
        inputs += [merge.student, str(branch.output_dir)] if branch.adapter else [str(branch.output_dir)]
    if uses_base_model(recipe):
        inputs.append(merge.student)
    copies = sum(1 for branch in merge.branches if branch.adapter)
    return MergeSizes(inputs, out_dtype(recipe), copies=copies, copy_dtype=recipe.mot.merge.dtype,
                      copies_are="mergekit's LoRA merge cache")


def run_merge(recipe: Recipe, step: Step, settings: Any = None) -> MergeResult:
    """`mergekit-yaml merge.yaml OUT` into a scratch directory, renamed into place when complete.
    Adapters are merged into the student in the merge's dtype, in a cache deleted afterwards."""
    scratch = step.output_dir.with_name(step.output_dir.name + ".partial")
    remove_tree(scratch, recipe.run_dir)
    cmd = python_command(MERGE_MODULE, str(step.config_path), str(scratch), "--random-seed", str(recipe.mot.seed),
                         "--out-shard-size", str(recipe.shard_bytes), "--async-write", "--quiet")
    cache = step.output_dir.with_name(LORA_CACHE)
    if any(branch.adapter for branch in step.spec.branches):
        cmd += ["--lora-merge-cache", str(cache), "--lora-merge-dtype", step.config["dtype"]]
    remove_tree(cache, recipe.run_dir)
    try:
        run_logged(step.id, cmd, step.log_path, warm_in=warm_dir(recipe))
    finally:
        remove_tree(cache, recipe.run_dir)
    if "base_model" not in step.config:
        # an adapter branch's directory lacks the student's generation_config.json: take it from the student
        donors = [step.spec.branches[0].output_dir, Path(step.spec.student)]
        for name in DONOR_FILES:
            donor = next((d / name for d in donors if (d / name).is_file()), None)
            if donor:
                shutil.copy2(donor, scratch / name)
    remove_tree(step.output_dir, recipe.run_dir)
    scratch.rename(step.output_dir)
    return MergeResult(merged=str(step.output_dir), method=step.config["merge_method"],
                       inputs=[m["model"] for m in step.config["models"]])


def main(argv: list[str]) -> None:
    """`python -m mot_plugin.builtin.mergekit_merge MERGE_YAML OUT [OPTIONS]`: `mergekit-yaml` with these
    arguments, plus `--cuda` when torch sees a GPU (the merge computes there, on the CPU otherwise)."""
    import torch
    from mergekit.scripts.run_yaml import main as mergekit_yaml

    if torch.cuda.is_available() and "--cuda" not in argv:
        argv = [*argv, "--cuda"]
    print(f"mot: mergekit-yaml {' '.join(argv)}", flush=True)
    threading.Thread(target=read_ahead, args=(Path(argv[0]),), daemon=True).start()
    mergekit_yaml(argv)


def read_ahead(config_path: Path) -> None:
    """Ask the kernel to read the merge's input files into the page cache (`posix_fadvise` WILLNEED,
    shard by shard in the order mergekit reads them), while mergekit merges: it then finds its memory
    maps' pages there instead of faulting them in one by one. Skipped when the inputs would fill more
    than half the available memory (their pages would be evicted before mergekit reads them)."""
    import yaml

    config = yaml.safe_load(config_path.read_text())
    models = [m["model"] for m in config.get("models") or []] + [config["base_model"]] * ("base_model" in config)
    shards = [sorted(Path(m.split("+")[0]).glob("*.safetensors")) for m in models]
    total = sum(f.stat().st_size for files in shards for f in files)
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    if total > int(meminfo["MemAvailable"].split()[0]) * 1024 // 2:
        return
    for i in range(max(map(len, shards), default=0)):
        for files in shards:
            if i < len(files):
                fd = os.open(files[i], os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
                finally:
                    os.close(fd)


if __name__ == "__main__":
    main(sys.argv[1:])
