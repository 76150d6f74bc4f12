"""The run directory: its files, the lock that keeps `mot run` and `mot plan` apart, and the steps'
markers (what `mot status` reads).

A step is finished when its marker (`done.json`, written last and atomically, after its outputs
are fsynced) holds the step's current fingerprint. Nothing is written or deleted through a symlink
below the run directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mot_plugin.atomic import check_inside, read_json, remove_tree, write_text
from mot_plugin.datahash import HASHES_FILE
from mot_plugin.environment import ENVIRONMENT_FILE
from mot_plugin.errors import UserError
from mot_plugin.planner import Plan
from mot_plugin.recipe import dump_yaml
from mot_plugin.results import StepResult
from mot_plugin.steps import Step

LOCK_FILE = ".lock"
RECIPE_FILE = "recipe.yaml"
"""The resolved recipe, in the run directory; `mot.run_dir` is `.`: the directory it is in."""
RECIPE_HEADER = "# The recipe of the run in this directory, as mot resolved it (mot.run_dir: this directory).\n"
SOURCE_FILE = "recipe.source.yaml"
"""The recipe file the run was planned from, as its author wrote it (comments, relative paths)."""
CURRENT_FILE = "current.json"
DIAGNOSTICS_FILE = "diagnostics.json"
"""A merge's diagnostics, next to its config (`round-01/diagnostics.json`)."""

PROGRESS = re.compile(rb"(\d+)/(\d+) \[")
"""A progress bar's `done/total [` in the log of a step that is not a branch (a merge, an evaluation)."""


class RunLocked(UserError):
    """Another `mot run` holds the run directory."""


def check_paths(plan: Plan) -> None:
    """Refuse a run directory where a step's files would be written through a symlink."""
    run_dir = plan.recipe.run_dir
    for path in (run_dir / RECIPE_FILE, run_dir / SOURCE_FILE, run_dir / ENVIRONMENT_FILE, run_dir / HASHES_FILE, run_dir / LOCK_FILE, run_dir / CURRENT_FILE):
        check_inside(path, run_dir)
    for step in plan.steps:
        for path in (step.config_path, step.log_path, step.marker_path, step.failed_path, step.where_path,
                     step.output_dir):
            check_inside(path, run_dir)


def write_configs(plan: Plan) -> None:
    """Write the resolved recipe, the training files' hashes and every step's config file
    (what `mot plan` leaves behind; call it holding `run_lock`). A file that already holds the same
    text is left as it is (planning an unchanged recipe again writes nothing)."""
    check_paths(plan)
    recipe = plan.recipe.to_dict()
    recipe["mot"]["run_dir"] = "."  # the run directory is wherever this file is: `mot status DIR` reads DIR
    _write_changed(plan.recipe.run_dir / RECIPE_FILE, RECIPE_HEADER + dump_yaml(recipe))
    source = Path(plan.recipe.source)
    if source.is_file() and source.absolute() != (plan.recipe.run_dir / RECIPE_FILE).absolute():
        _write_changed(plan.recipe.run_dir / SOURCE_FILE, source.read_text())
    _write_changed(plan.recipe.run_dir / HASHES_FILE, json.dumps(plan.data_hashes, indent=2, default=str))
    for step in plan.steps:
        header = f"# {step.id}: written by mot from {plan.recipe.source}; edit the recipe, not this file.\n"
        _write_changed(step.config_path, header + dump_yaml(step.config))


def _write_changed(path: Path, text: str) -> None:
    try:
        if path.read_text() == text:
            return
    except (FileNotFoundError, UnicodeDecodeError, IsADirectoryError):
        pass
    write_text(path, text)


def config_digest(step: Step) -> str | None:
    """sha256 of the step's config file as it is on disk now (what the step reads)."""
    try:
        return hashlib.sha256(step.config_path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def step_state(step: Step) -> str:
    """`done`, `stale` (finished with another config), `failed` or `pending`."""
    marker = read_json(step.marker_path)
    if marker is not None:
        return "done" if marker.get("fingerprint") == step.fingerprint else "stale"
    return "failed" if step.failed_path.exists() else "pending"


def _lock_holder(run_dir: Path) -> int | None:
    try:
        return int((run_dir / LOCK_FILE).read_text().strip() or 0) or None
    except (FileNotFoundError, ValueError):
        return None


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory for one `mot run` or `mot plan`; raise `RunLocked` if another has it."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"mot.run_dir: {run_dir}: cannot be created ({err.strerror})") from None
    check_inside(run_dir / LOCK_FILE, run_dir)
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(run_dir)
            raise RunLocked(f"{run_dir} is in use by another mot run or plan (pid {holder}); wait for it or "
                            "stop it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)


def is_running(run_dir: Path) -> bool:
    """Whether some `mot run` holds the run directory now."""
    try:
        with open(run_dir / LOCK_FILE) as handle:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
    except BlockingIOError:
        return True
    except FileNotFoundError:
        return False


def clear_step(step: Step, run_dir: Path) -> None:
    """Remove what an unfinished or outdated attempt of `step` left behind (its `where` record
    stays until the launcher writes a new one: a launcher may need it to stop an orphaned job)."""
    for path in (step.marker_path, step.failed_path, *([diagnostics_path(step)] if step.diagnosed else [])):
        remove_tree(path, run_dir)
    remove_tree(step.output_dir, run_dir)


def diagnostics_path(merge: Step) -> Path:
    return merge.config_path.parent / DIAGNOSTICS_FILE


@dataclass(frozen=True)
class StepStatus:
    """One step as `mot status` shows it."""

    step: str
    state: str
    """`done`, `running`, `failed`, `stale` or `pending`."""
    seconds: float | None
    """Wall time of the finished step."""
    result: StepResult | None
    """The finished step's result (`mot_plugin.results`)."""
    error: str | None
    """Why the last attempt failed."""
    log: str
    where: dict[str, Any]
    """Where the step runs or ran (host, devices, job id), as its launcher recorded it."""
    progress: tuple[int, int] | None
    """How far a running step's progress bar got."""
    pruned: str | None
    """A finished branch or merge candidate whose weights were deleted once used: what used them
    (`merge`, `the choice`); None otherwise."""


def read_result(step: Step, marker: dict | None = None) -> StepResult | None:
    """The result in a finished step's marker (`marker`: its content, when read already), typed; None
    when the step has no marker."""
    marker = read_json(step.marker_path) if marker is None else marker
    return None if marker is None else step.result(marker.get("result") or {}, str(step.marker_path))


def status_rows(plan: Plan) -> list[StepStatus]:
    """One row per step: its state, seconds, result, log, where it runs and how far it got."""
    run_dir = plan.recipe.run_dir
    current = read_json(run_dir / CURRENT_FILE) if is_running(run_dir) else None
    running = (current or {}).get("steps", {})
    rows = []
    for step in plan.steps:
        state = step_state(step)
        if step.id in running and state != "done":
            state = "running"
        marker = read_json(step.marker_path)
        failed = read_json(step.failed_path) or {}
        rows.append(StepStatus(
            step=step.id, state=state, seconds=(marker or {}).get("seconds"), result=read_result(step, marker),
            error=failed.get("error"), log=str(step.log_path), where=read_json(step.where_path) or {},
            progress=last_progress(step) if state == "running" else None,
            pruned=(step.pruned_by
                    if state == "done" and (step.trains or plan.prunable(step)) and not step.output_dir.exists()
                    else None)))
    return rows


def last_progress(step: Step) -> tuple[int, int] | None:
    """How far a running step got: a branch's optimizer steps as its trainer recorded them
    (`PROGRESS_FILE`); another step's last `done/total [` progress bar count in its log."""
    if step.progress_file:
        recorded = read_json(step.progress_file)
        return (recorded["step"], recorded["max_steps"]) if isinstance(recorded, dict) else None
    try:
        with step.log_path.open("rb") as log:
            log.seek(max(0, step.log_path.stat().st_size - 4096))
            found = PROGRESS.findall(log.read())
    except FileNotFoundError:
        return None
    return (int(found[-1][0]), int(found[-1][1])) if found else None
