"""Built-in Ray launcher: with `mot.launch.launcher: ray`, each branch is a Ray task on an existing
cluster (`mot.launch.ray.address`) or on a local Ray started by `mot run`.

The task runs `axolotl train` on whichever node Ray picks, so the run directory (configs, prepared
data, logs, weights, `where.json`) must be on storage every node sees at the same path. A task whose
worker dies (the process killed, the node lost) is run again by Ray, up to `launch.ray.max_retries`
times, from a clean output directory; a branch that fails by itself (exit code not 0) is not retried.
Ray is imported only when a recipe uses it.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mot_plugin.atomic import read_json, remove_tree
from mot_plugin.findings import Finding
from mot_plugin.hookspecs import hookimpl
from mot_plugin.process import StepFailed, run_logged
from mot_plugin.recipe import Recipe, RecipeError
from mot_plugin.registry import Launcher
from mot_plugin.results import BranchResult
from mot_plugin.steps import Step
from mot_plugin.train_command import BRANCH_ENV, branch_command, branch_result

PASSED_ENV = ("PYTHONPATH", "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE",
              "AXOLOTL_DO_NOT_TRACK", "WANDB_MODE", "WANDB_DISABLED")
"""Environment variables of `mot run` that the branch tasks get too (when set)."""

_init_lock = threading.Lock()
_remote: list[Any] = []
"""`run_branch_task` as a Ray remote function, made once per connection."""


class RaySettings(BaseModel):
    """The Ray launcher's settings (`mot.launch.ray`): each branch is a Ray task."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    address: str | None = None
    """An existing cluster (`auto`, `ray://host:10001`, `host:6379`); unset: start a local one."""
    num_cpus: float = Field(default=1, ge=0)
    """CPUs each branch task asks for."""
    num_gpus: float = Field(default=0, ge=0)
    """GPUs each branch task asks for (Ray sets CUDA_VISIBLE_DEVICES for the task)."""
    max_retries: int = Field(default=2, ge=0)
    """How often a branch whose worker died is run again."""


def _ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def check(recipe: Recipe, settings: RaySettings) -> None:
    if not _ray_installed():
        raise RecipeError("mot.launch.launcher: ray needs the ray package (pip install 'mot-plugin[ray]')")


def findings(recipe: Recipe, settings: RaySettings) -> list[Finding]:
    """The cluster it connects to (risky: ray), or the local Ray it starts."""
    if settings.address:
        return [Finding("contacts", "ray", "mot.launch.ray.address", settings.address)]
    return [Finding("executes", None, "mot.launch.launcher", "ray", "a local Ray cluster on this machine")]


@hookimpl
def mot_register(register) -> None:
    register(Launcher("ray", run_branch=run_branch, settings=RaySettings, check=check, findings=findings,
                      risks={"ray": "connects to a Ray cluster"}))


def _connect(settings: RaySettings) -> Any:
    """`ray`, connected once per process (several runner threads may ask at once)."""
    import logging

    import ray

    with _init_lock:
        if not ray.is_initialized():
            env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
            env.update(BRANCH_ENV)
            address = settings.address
            # unset address: a new local Ray for this run (never one found on the machine), on loopback,
            # without a dashboard
            local = {} if address else {"include_dashboard": False, "_node_ip_address": "127.0.0.1"}
            ray.init(address=address or "local", runtime_env={"env_vars": env}, logging_level=logging.WARNING,
                     log_to_driver=False, **local)
            _remote.clear()
        if not _remote:
            _remote.append(ray.remote(run_branch_task))
    return ray


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _attempt(step: Step, task_id: str) -> int:
    """1 for a task's first run; Ray keeps the task id when it retries a task whose worker died."""
    previous = read_json(step.where_path) or {}
    return previous.get("attempt", 0) + 1 if previous.get("task_id") == task_id else 1


def run_branch_task(recipe: Recipe, step: Step, settings: RaySettings) -> BranchResult:
    """The Ray task: record where it runs, start clean, train, return the branch's result."""
    import ray

    context = ray.get_runtime_context()
    task_id = context.get_task_id()
    attempt = _attempt(step, task_id)
    if attempt > 1 and step.log_path.exists():  # keep the log of the attempt that died
        step.log_path.replace(step.log_path.with_name(f"{step.log_path.stem}.attempt-{attempt - 1}.log"))
    port = _free_port() if recipe.mot.launch.processes > 1 else recipe.mot.launch.port
    step.record_where(launcher="ray", host=socket.gethostname(), node_ip=ray.util.get_node_ip_address(),
                      worker_pid=os.getpid(), task_id=task_id, attempt=attempt,
                      gpus=os.environ.get("CUDA_VISIBLE_DEVICES") if settings.num_gpus else None,
                      port=port if recipe.mot.launch.processes > 1 else None)
    remove_tree(step.output_dir, recipe.run_dir)
    run_logged(step.id, branch_command(recipe, step, port), step.log_path, env=BRANCH_ENV)
    return branch_result(step)


def run_branch(recipe: Recipe, step: Step, settings: RaySettings) -> BranchResult:
    """The branch as a Ray task with `launch.ray`'s resources; blocks this runner thread until it ends."""
    ray = _connect(settings)
    task = _remote[0].options(
        num_cpus=settings.num_cpus, num_gpus=settings.num_gpus, max_retries=settings.max_retries,
        retry_exceptions=False, name=f"mot:{step.id}")
    try:
        return ray.get(task.remote(recipe, step, settings))
    except ray.exceptions.RayTaskError as err:
        cause = err.cause
        if isinstance(cause, StepFailed):
            raise StepFailed(str(cause)) from None
        raise StepFailed(f"{step.id} failed in its Ray task ({type(cause).__name__}: "
                         f"{str(cause).splitlines()[0] if str(cause) else ''}); see {step.log_path}") from None
    except ray.exceptions.RayError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StepFailed(f"{step.id}: its Ray task was lost after {settings.max_retries} retries ({first}); "
                         f"see {step.log_path}") from None
