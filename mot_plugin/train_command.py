"""How a branch trains, whichever launcher runs it: the command line, its environment, and the
result the in-branch Axolotl plugin leaves in the branch's output directory."""

from __future__ import annotations

from mot_plugin.errors import StepFailed
from mot_plugin.process import python_command
from mot_plugin.recipe import Recipe
from mot_plugin.results import BranchResult
from mot_plugin.steps import RESULT_FILE, Step

IN_BRANCH_PLUGIN = "mot_plugin.axolotl_plugin.MotBranchPlugin"
"""The Axolotl plugin every branch config lists: it writes the branch's `mot_result.json`."""
BRANCH_ENV = {"AXOLOTL_DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"}


def branch_command(recipe: Recipe, step: Step, port: int) -> list[str]:
    """`python -m axolotl.cli.train CONFIG`, under `accelerate launch` when a branch has several
    processes (the recipe's DeepSpeed/FSDP keys are in the config and pass through unchanged)."""
    train = ["axolotl.cli.train", str(step.config_path)]
    processes = recipe.mot.launch.processes
    if processes == 1:
        return python_command(*train)
    return python_command("accelerate.commands.launch", "--num_processes", str(processes),
                          "--main_process_port", str(port), "-m", *train)


def branch_result(step: Step) -> BranchResult:
    """What the in-branch plugin wrote when training finished."""
    result_file = step.output_dir / RESULT_FILE
    if not result_file.is_file():
        raise StepFailed(f"{step.id} wrote no {RESULT_FILE} (was {IN_BRANCH_PLUGIN} loaded?); see {step.log_path}")
    return BranchResult.model_validate_json(result_file.read_text())
