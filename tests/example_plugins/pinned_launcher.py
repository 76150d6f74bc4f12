"""A launcher: each teacher's branches train on devices of their own (the long-CoT teacher on the
big GPUs), on this machine, in a fork of the warm server like the local launcher. Select it with
`launch: {launcher: pinned, pinned: {devices: {r1: "0,1", qwq: "2"}, default: "3"}}`."""

from __future__ import annotations

import socket

from pydantic import BaseModel, ConfigDict, Field

from mot_plugin.hookspecs import hookimpl
from mot_plugin.process import run_logged, warm_dir
from mot_plugin.recipe import Line, RecipeError
from mot_plugin.registry import Launcher
from mot_plugin.train_command import BRANCH_ENV, branch_command, branch_result


class PinnedSettings(BaseModel):
    """`mot.launch.pinned`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    devices: dict[str, Line] = Field(min_length=1)
    """`CUDA_VISIBLE_DEVICES` of each teacher's branches, by teacher name."""
    default: Line | None = None
    """For other branches (a baseline's mix of teachers); unset: every teacher must be listed."""


def check(recipe, settings: PinnedSettings):
    """Refuse, before anything runs, a teacher name that is no teacher, or a teacher without devices."""
    names = [t.name for t in recipe.mot.teachers]
    for name in settings.devices:
        if name not in names:
            raise RecipeError(f"mot.launch.pinned.devices.{name}: no teacher of that name")
    if settings.default is None and len(settings.devices) < len(names):
        missing = next(n for n in names if n not in settings.devices)
        raise RecipeError(f"mot.launch.pinned.devices: no devices for teacher {missing!r} (or set a default)")


def run_branch(recipe, step, settings: PinnedSettings):
    """Train the branch on its teacher's devices; weights and `mot_result.json` land in `step.output_dir`."""
    devices = settings.devices.get(step.spec.teacher.name, settings.default)
    step.record_where(launcher="pinned", host=socket.gethostname(), devices=devices)  # for `mot status`
    run_logged(step.id, branch_command(recipe, step, port=recipe.mot.launch.port), step.log_path,
               env={**BRANCH_ENV, "CUDA_VISIBLE_DEVICES": devices}, warm_in=warm_dir(recipe))
    return branch_result(step)  # raises StepFailed naming the log when training left no result


@hookimpl
def mot_register(register):
    register(Launcher("pinned", run_branch=run_branch, settings=PinnedSettings, check=check))
