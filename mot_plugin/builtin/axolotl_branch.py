"""Built-in branch plugin: the Axolotl config of a branch, and `axolotl train` as a subprocess."""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

from mot_plugin.hookspecs import hookimpl
from mot_plugin.process import StepFailed, run_logged
from mot_plugin.recipe import Recipe
from mot_plugin.specs import RESULT_FILE, BranchSpec, Step

IN_BRANCH_PLUGIN = "mot_plugin.axolotl_plugin.MotBranchPlugin"
BRANCH_ENV = {"AXOLOTL_DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"}


@hookimpl(trylast=True)
def mot_branch_config(recipe: Recipe, branch: BranchSpec) -> dict[str, Any]:
    """Shared keys, then the teacher's overrides, then what the planner owns."""
    config = copy.deepcopy(recipe.axolotl)
    config.update(copy.deepcopy(branch.teacher.overrides))
    plugins = [p for p in config.get("plugins") or [] if p != IN_BRANCH_PLUGIN]
    config.update(
        base_model=branch.student,
        tokenizer_config=branch.tokenizer,
        datasets=copy.deepcopy(branch.teacher.datasets),
        dataset_prepared_path=str(branch.prepared_dir),
        output_dir=str(branch.output_dir),
        max_steps=branch.max_steps,
        seed=branch.seed,
        save_strategy="no",
        plugins=[*plugins, IN_BRANCH_PLUGIN],
        mot_step=branch.step_id,
    )
    return config


@hookimpl(trylast=True)
def mot_run_branch(recipe: Recipe, step: Step) -> dict[str, Any]:
    """`python -m axolotl.cli.train axolotl.yaml` (one process, no accelerate exec)."""
    cmd = [sys.executable, "-m", "axolotl.cli.train", str(step.config_path)]
    run_logged(step.id, cmd, step.log_path, env=BRANCH_ENV)
    result_file = step.output_dir / RESULT_FILE
    if not result_file.is_file():
        raise StepFailed(f"{step.id} wrote no {RESULT_FILE} (was {IN_BRANCH_PLUGIN} loaded?); see {step.log_path}")
    return json.loads(result_file.read_text())
