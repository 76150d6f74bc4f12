"""Built-in branch plugin: the Axolotl config of a branch, and the `local` launcher (`axolotl train`
in a fork of the warm server or as a subprocess, several at once on their own devices when the recipe
asks)."""

from __future__ import annotations

import copy
import os
import queue
import socket
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict

from mot_plugin.axolotl_config import own_keys
from mot_plugin.hookspecs import hookimpl
from mot_plugin.process import StepFailed, python_command, run_logged, warm_dir
from mot_plugin.recipe import Line, Recipe, RecipeError
from mot_plugin.registry import Launcher
from mot_plugin.results import BranchResult, PrepareResult
from mot_plugin.steps import BranchSpec, Step
from mot_plugin.train_command import BRANCH_ENV, IN_BRANCH_PLUGIN, branch_command, branch_result


@hookimpl(trylast=True)
def mot_branch_config(recipe: Recipe, branch: BranchSpec) -> dict[str, Any]:
    """Shared keys, then the teacher's overrides, then what the planner owns (see
    `mot_plugin.axolotl_config.own_keys` for the keys it drops or renames per branch)."""
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
        mot_shard_size=recipe.shard_bytes,
    )
    return own_keys(config, recipe, branch)


_slots: dict[int, queue.Queue[int]] = {}
_slots_lock = threading.Lock()


@contextmanager
def _slot(parallel: int) -> Iterator[int]:
    """One of `parallel` slots (a device group and a port) for the time a branch runs."""
    with _slots_lock:
        if parallel not in _slots:
            _slots[parallel] = queue.Queue()
            for number in range(parallel):
                _slots[parallel].put(number)
        free = _slots[parallel]
    number = free.get()
    try:
        yield number
    finally:
        free.put(number)


class LocalSettings(BaseModel):
    """The local launcher's settings (`mot.launch.local`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    devices: list[Line] = []
    """`CUDA_VISIBLE_DEVICES` for each concurrent branch (for example `["0,1", "2,3"]`); at least
    `launch.parallel` groups when set, each with at least `launch.processes` devices. (Its old place,
    `launch.devices`, is still read.)"""


def check_local(recipe: Recipe, settings: LocalSettings) -> None:
    """A device group for each concurrent branch, each with a device for each of its processes."""
    launch, devices = recipe.mot.launch, settings.devices
    key = "mot.launch.devices" if "devices" in launch.moved else "mot.launch.local.devices"
    if devices and len(devices) < launch.parallel:
        raise RecipeError(f"{key}: {len(devices)} device groups for launch.parallel {launch.parallel}; "
                          f"give one group per concurrent branch")
    for number, group in enumerate(devices):
        if len(group.split(",")) < launch.processes:
            raise RecipeError(f"{key}: group {number} ({group!r}) has fewer devices than "
                              f"launch.processes {launch.processes}")


def run_local(recipe: Recipe, step: Step, settings: LocalSettings) -> BranchResult:
    """The local launcher: the branch runs on this machine, in a slot of its own."""
    launch = recipe.mot.launch
    with _slot(launch.parallel) as slot:
        env = dict(BRANCH_ENV)
        devices = settings.devices[slot] if settings.devices else None
        if devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = devices
        elif launch.parallel > 1 and "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // launch.parallel))
        port = launch.port + slot
        step.record_where(launcher="local", host=socket.gethostname(), slot=slot, devices=devices,
                          port=port if launch.processes > 1 else None)
        # `accelerate launch` (several processes per branch) starts processes of its own: always cold
        run_logged(step.id, branch_command(recipe, step, port), step.log_path, env=env,
                   warm_in=warm_dir(recipe) if launch.processes == 1 else None)
    return branch_result(step)


@hookimpl
def mot_register(register) -> None:
    register(Launcher("local", run_branch=run_local, settings=LocalSettings, check=check_local))


@hookimpl(trylast=True)
def mot_prepare_data(recipe: Recipe, step: Step) -> PrepareResult:
    """`python -m axolotl.cli.preprocess CONFIG` on this machine: the teacher's data, tokenized once."""
    run_logged(step.id, python_command("axolotl.cli.preprocess", str(step.config_path)), step.log_path,
               env=BRANCH_ENV, warm_in=warm_dir(recipe))
    if not step.output_dir.is_dir() or not any(step.output_dir.iterdir()):
        raise StepFailed(f"{step.id} left no prepared data in {step.output_dir}; see {step.log_path}")
    return PrepareResult(prepared=str(step.output_dir))
