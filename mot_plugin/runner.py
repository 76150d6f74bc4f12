"""The runner: walks a plan's steps, skips finished ones, runs the rest through the hooks.

A step is finished when its marker (`done.json`, written last and atomically, after its outputs
are fsynced) holds the step's current fingerprint and its output still exists. Anything else in its
output directory is a leftover and is cleared before the step runs again. One lock per run
directory keeps `mot run` and `mot plan` apart. Nothing is written or deleted through a symlink
below the run directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import queue
import re
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pluggy

from mot_plugin.atomic import check_inside, fsync_tree, read_json, remove_tree, write_json, write_text
from mot_plugin.datahash import HASHES_FILE
from mot_plugin.diagnostics import merge_diagnostics
from mot_plugin.environment import ENVIRONMENT_FILE, environment
from mot_plugin.errors import UserError
from mot_plugin.planner import Plan, human_bytes, weights_bytes
from mot_plugin.process import StepFailed
from mot_plugin.recipe import dump_yaml
from mot_plugin.specs import Step

LOCK_FILE = ".lock"
RECIPE_FILE = "recipe.yaml"
"""The resolved recipe, in the run directory; `mot.run_dir` is `.`: the directory it is in."""
RECIPE_HEADER = "# The recipe of the run in this directory, as mot resolved it (mot.run_dir: this directory).\n"
SOURCE_FILE = "recipe.source.yaml"
"""The recipe file the run was planned from, as its author wrote it (comments, relative paths)."""
CURRENT_FILE = "current.json"
DIAGNOSTICS_FILE = "diagnostics.json"
"""A merge's diagnostics, next to its config (`round-01/diagnostics.json`)."""


READ_OUTPUTS = ("prepare", "branch", "merge")
"""Kinds of steps whose output other steps read: a done one whose output is gone runs again."""


class RunLocked(UserError):
    """Another `mot run` holds the run directory."""


class NotEnoughDisk(StepFailed):
    """The disk holding the run directory has too little room for the next round."""


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
    (what `mot plan` leaves behind; call it holding `run_lock`)."""
    check_paths(plan)
    recipe = plan.recipe.to_dict()
    recipe["mot"]["run_dir"] = "."  # the run directory is wherever this file is: `mot status DIR` reads DIR
    write_text(plan.recipe.run_dir / RECIPE_FILE, RECIPE_HEADER + dump_yaml(recipe))
    source = Path(plan.recipe.source)
    if source.is_file() and source.absolute() != (plan.recipe.run_dir / RECIPE_FILE).absolute():
        write_text(plan.recipe.run_dir / SOURCE_FILE, source.read_text())
    write_json(plan.recipe.run_dir / HASHES_FILE, plan.data_hashes)
    for step in plan.steps:
        header = f"# {step.id}: written by mot from {plan.recipe.source}; edit the recipe, not this file.\n"
        write_text(step.config_path, header + dump_yaml(step.config))


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


def _clear(step: Step, run_dir: Path) -> None:
    """Remove what an unfinished or outdated attempt of `step` left behind (its `where` record
    stays until the launcher writes a new one: a launcher may need it to stop an orphaned job)."""
    for path in (step.marker_path, step.failed_path, *([_diagnostics_path(step)] if step.kind == "merge" else [])):
        remove_tree(path, run_dir)
    remove_tree(step.output_dir, run_dir)


def _diagnostics_path(merge: Step) -> Path:
    return merge.config_path.parent / DIAGNOSTICS_FILE


def run_plan(plan: Plan, hook: pluggy.HookRelay, echo: Callable[[str], None] = print) -> dict[str, dict]:
    """Run every step that is not done; return each step's result, keyed by step id."""
    check_paths(plan)
    with run_lock(plan.recipe.run_dir):
        write_configs(plan)
        write_json(plan.recipe.run_dir / ENVIRONMENT_FILE, environment())
        return _Scheduler(plan, hook, echo).run()


class _Scheduler:
    """Starts steps in plan order as soon as the steps they need have finished, at most
    `mot.launch.parallel` at once. After a failure it starts nothing new, lets the running steps
    finish (their work is kept), then raises the first error."""

    def __init__(self, plan: Plan, hook: pluggy.HookRelay, echo: Callable[[str], None]):
        self.plan, self.hook, self.echo = plan, hook, echo
        self.recipe = plan.recipe
        self.by_id = {s.id: s for s in plan.steps}
        self.number = {s.id: f"[{i}/{len(plan.steps)}] {s.id}" for i, s in enumerate(plan.steps, 1)}
        self.results: dict[str, dict] = {}
        self.running: dict[str, float] = {}
        self.finished: queue.Queue[tuple[Step, dict | None, BaseException | None]] = queue.Queue()
        self.disk_checked: set[int] = set()
        self.configs: dict[str, str | None] = {}

    def todo(self) -> list[Step]:
        """Steps to run: those not done; a done step whose output others read but is gone (unless it
        is a branch whose weights were deleted after use) and every step after it; and any finished branch whose weights
        were deleted but that a step to run reads again."""
        ids = {s.id for s in self.plan.steps if step_state(s) != "done"}
        lost = {s.id for s in self.plan.steps if s.id not in ids and s.kind in READ_OUTPUTS
                and not s.output_dir.exists() and not self.plan.prunable(s)}
        while more := {s.id for s in self.plan.steps if lost.intersection(s.deps)} - lost:
            lost |= more
        ids |= lost
        grew = True
        while grew:
            needed = {d for i in ids for d in self.by_id[i].deps
                      if self.by_id[d].kind == "branch" and not self.by_id[d].output_dir.exists()}
            grew = not needed <= ids
            ids |= needed
        return [s for s in self.plan.steps if s.id in ids]

    def run(self) -> dict[str, dict]:
        pending = self.todo()
        for step in self.plan.steps:
            if step not in pending:
                self.results[step.id] = read_json(step.marker_path)["result"]
                self.echo(f"{self.number[step.id]}: done earlier, skipped")
        error: BaseException | None = None
        while pending or self.running:
            try:
                for step in self._ready(pending) if error is None else []:
                    pending.remove(step)
                    self._start(step)
            except NotEnoughDisk as err:
                error = err
            if not self.running:
                break
            step, result, failure = self.finished.get()
            started = self.running.pop(step.id)
            self._write_current()
            if failure is not None:
                error = error or failure
                continue
            self._finish(step, result, started)
        (self.recipe.run_dir / CURRENT_FILE).unlink(missing_ok=True)
        if error is not None:
            raise error
        return self.results

    def _ready(self, pending: list[Step]) -> list[Step]:
        waiting = {s.id for s in pending} | set(self.running)
        ready = []
        for step in pending:
            if len(self.running) + len(ready) >= self.recipe.mot.launch.parallel:
                break
            if not waiting.intersection(step.deps):
                ready.append(step)
        return ready

    def _start(self, step: Step) -> None:
        if step.kind == "branch" and step.round > 0:
            self._check_disk(step.round)
        _clear(step, self.recipe.run_dir)
        self.configs[step.id] = config_digest(step)
        self.echo(f"{self.number[step.id]}: running (log: {step.log_path})")
        self.running[step.id] = time.time()
        self._write_current()
        threading.Thread(target=self._execute, args=(step,), daemon=True).start()

    def _execute(self, step: Step) -> None:
        """In a thread of its own: run the step's hook, record a failure, report back."""
        hooks = {"prepare": self.hook.mot_prepare_data, "branch": self.hook.mot_run_branch,
                 "merge": self.hook.mot_run_merge, "eval": self.hook.mot_evaluate}
        try:
            with _progress(step, self.echo, self.running[step.id]):
                result = hooks[step.kind](recipe=self.recipe, step=step)
            if result is None:
                raise RuntimeError(f"{step.id}: no plugin ran this {step.kind} step")
            if step.kind == "merge":
                result = {**result, "diagnostics": self._diagnose(step)}
            if config_digest(step) != self.configs[step.id]:
                raise RuntimeError(f"{step.config_path} changed while {step.id} ran; run again")
            fsync_tree(step.output_dir)
            self.finished.put((step, result, None))
        except BaseException as err:  # noqa: BLE001 - reported to the main thread, which raises it
            try:
                write_json(step.failed_path, {"fingerprint": step.fingerprint, "error": str(err)})
            finally:  # even if recording the failure fails (a full disk), the scheduler hears of it
                self.finished.put((step, None, err))

    def _diagnose(self, step: Step) -> dict | None:
        """A finished merge's diagnostics (while its branches' weights still exist, whichever plugin
        merged), also written to `diagnostics.json`; None when they cannot be computed."""
        branches = {b.teacher.name: b.output_dir for b in step.spec.branches}
        try:
            found = merge_diagnostics(step.spec.student, branches, step.output_dir)
        except ValueError as err:
            self.echo(f"    {step.id}: no diagnostics: {err}")
            return None
        if found is not None:
            write_json(_diagnostics_path(step), found)
        return found

    def _finish(self, step: Step, result: dict, started: float) -> None:
        seconds = round(time.time() - started, 2)
        write_json(step.marker_path, {"fingerprint": step.fingerprint, "config_sha256": self.configs[step.id],
                                      "seconds": seconds, "result": result})
        self.results[step.id] = result
        self.echo(f"{self.number[step.id]}: done in {seconds:.1f}s{_brief(result)}")
        for warning in (result.get("diagnostics") or {}).get("warnings", []):
            self.echo(f"    {step.id}: warning: {warning}")
        if step.ends_round:
            round_steps = [s for s in self.plan.steps if s.round == step.round]
            student = next(s.output_dir for s in round_steps if s.kind == "merge")
            self.hook.mot_round_end(recipe=self.recipe, round=step.round, student=student,
                                    results={s.id: self.results[s.id] for s in round_steps})
        for dep in step.deps:
            branch = self.by_id[dep]
            if self.plan.prunable(branch) and all(step_state(r) == "done" for r in self.plan.readers(branch)):
                remove_tree(branch.output_dir, self.recipe.run_dir)

    def _write_current(self) -> None:
        write_json(self.recipe.run_dir / CURRENT_FILE, {"pid": os.getpid(), "steps": self.running})

    def _check_disk(self, round_: int) -> None:
        """Before a round's first branch: is there room for its branches and its merge?"""
        if round_ in self.disk_checked:
            return
        self.disk_checked.add(round_)
        size = weights_bytes(Path(self.recipe.student))
        if not size:
            return
        writes = sum(1 for s in self.plan.steps if s.round == round_ and s.kind in ("branch", "merge")
                     and step_state(s) != "done")
        free = shutil.disk_usage(self.recipe.run_dir).free
        if free < writes * size:
            raise NotEnoughDisk(f"round {round_} needs about {human_bytes(writes * size)} for {writes} checkpoints, "
                                f"but {self.recipe.run_dir} has {human_bytes(free)} free; free some space and "
                                f"run again")


PROGRESS = re.compile(rb"(\d+)/(\d+) \[")
PROGRESS_SECONDS = 15.0


@contextmanager
def _progress(step: Step, echo: Callable[[str], None], started: float) -> Iterator[None]:
    """While the step runs, echo how far its log's progress bar got (at most every 15 s)."""
    stop = threading.Event()

    def watch() -> None:
        last = None
        while not stop.wait(PROGRESS_SECONDS):
            progress = _last_progress(step.log_path)
            if progress and progress != last:
                last = progress
                echo(f"    {step.id}: {progress[0]}/{progress[1]}, {time.time() - started:.0f}s")

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _brief(result: dict) -> str:
    if result.get("accuracy") is not None:
        return f", accuracy {100 * result['accuracy']:.1f}%"
    loss = result.get("final_train_loss")
    return f", final train loss {loss:.4f}" if isinstance(loss, (int, float)) else ""


def status_rows(plan: Plan) -> list[dict[str, Any]]:
    """One row per step: its state, seconds, result summary, log, where it runs and how far it got."""
    run_dir = plan.recipe.run_dir
    current = read_json(run_dir / CURRENT_FILE) if is_running(run_dir) else None
    running = (current or {}).get("steps", {})
    rows = []
    for step in plan.steps:
        state = step_state(step)
        if step.id in running and state != "done":
            state = "running"
        marker = read_json(step.marker_path) or {}
        failed = read_json(step.failed_path) or {}
        rows.append({"step": step.id, "state": state, "seconds": marker.get("seconds"),
                     "result": marker.get("result") or {}, "error": failed.get("error"),
                     "log": str(step.log_path), "where": read_json(step.where_path) or {},
                     "progress": _last_progress(step.log_path) if state == "running" else None,
                     "pruned": state == "done" and step.kind == "branch" and not step.output_dir.exists()})
    return rows


def _last_progress(log_path: Path) -> tuple[int, int] | None:
    """The last `done/total [` progress bar count in a log, if any."""
    try:
        with log_path.open("rb") as log:
            log.seek(max(0, log_path.stat().st_size - 4096))
            found = PROGRESS.findall(log.read())
    except FileNotFoundError:
        return None
    return (int(found[-1][0]), int(found[-1][1])) if found else None
