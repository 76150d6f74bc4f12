"""A merge executor: the teachers' weighted mean of the branches' weights, computed in this
process with safetensors (no mergekit). Select it with `merge: {executor: mean}`; it refuses
methods other than `linear` and adapter branches, and its `merge.yaml` says what it does."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from mot_plugin.hookspecs import hookimpl
from mot_plugin.recipe import RecipeError
from mot_plugin.registry import MergeExecutor, MergeSizes


class MeanSettings(BaseModel):
    """`mot.merge.mean`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    files_from: Literal["first", "student"] = "first"
    """Where the config and tokenizer files come from: the first branch, or the round's student."""


def check(recipe, settings: MeanSettings):
    if recipe.mot.merge.method != "linear":
        raise RecipeError(f"mot.merge.method: the mean executor only averages (linear), not {recipe.mot.merge.method}")
    if recipe.adapter:
        raise RecipeError("mot.merge.executor: the mean executor merges full weights, not adapters")


def config(recipe, merge, settings: MeanSettings):
    """What `merge.yaml` holds: every input with its weight, and where the other files come from."""
    return {"executor": "mean", "models": [{"model": str(b.output_dir), "weight": b.teacher.weight}
                                           for b in merge.branches],
            "files_from": merge.student if settings.files_from == "student" else str(merge.branches[0].output_dir),
            "out_dtype": out_dtype(recipe)}


def out_dtype(recipe):
    """This executor's default for `merge.out_dtype`: `merge.dtype`."""
    return recipe.mot.merge.out_dtype or recipe.mot.merge.dtype


def sizes(recipe, merge, settings: MeanSettings):
    """What `mot plan` counts: every branch read, the mean written in `out_dtype`."""
    return MergeSizes(inputs=[str(b.output_dir) for b in merge.branches], out_dtype=out_dtype(recipe))


def run(recipe, step, settings: MeanSettings):
    """Average as `step.config` says; write into a scratch directory, rename it into place last."""
    import torch
    from safetensors.torch import load_file, save_file

    models = step.config["models"]
    total = sum(m["weight"] for m in models)
    weights = [load_file(Path(m["model"]) / "model.safetensors") for m in models]
    dtype = getattr(torch, step.config["out_dtype"])
    merged = {name: sum(m["weight"] * w[name].double() for m, w in zip(models, weights)).div(total).to(dtype)
              for name in weights[0]}
    scratch = step.output_dir.with_name(step.output_dir.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(step.config["files_from"], scratch, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    save_file(merged, scratch / "model.safetensors", metadata={"format": "pt"})
    scratch.rename(step.output_dir)
    return {"merged": str(step.output_dir), "method": "linear", "inputs": [m["model"] for m in models],
            "executor": "mean"}


@hookimpl
def mot_register(register):
    register(MergeExecutor("mean", config=config, run=run, settings=MeanSettings, check=check, sizes=sizes))
