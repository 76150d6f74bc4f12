"""A launcher: every branch's training command runs behind a prefix (`nice -n 10`, `ssh gpu-box`,
`srun --gres=gpu:1`, `docker exec trainer` ...). Select it with `launch: {launcher: prefix, prefix:
{command: [nice, -n, "10"]}}`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mot_plugin.hookspecs import hookimpl
from mot_plugin.process import run_logged
from mot_plugin.recipe import Line
from mot_plugin.registry import Launcher
from mot_plugin.train_command import BRANCH_ENV, branch_command, branch_result


class PrefixSettings(BaseModel):
    """`mot.launch.prefix`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: list[Line] = Field(min_length=1)
    """The words put before `python -m axolotl.cli.train CONFIG`."""


def run_branch(recipe, step, settings: PrefixSettings):
    """Train the branch behind the prefix; the weights and `mot_result.json` land in `step.output_dir`."""
    command = [*settings.command, *branch_command(recipe, step, port=recipe.mot.launch.port)]
    step.record_where(launcher="prefix", command=command)  # what `mot status` shows
    run_logged(step.id, command, step.log_path, env=BRANCH_ENV)  # raises StepFailed naming the log
    return branch_result(step)


@hookimpl
def mot_register(register):
    register(Launcher("prefix", run_branch=run_branch, settings=PrefixSettings))
