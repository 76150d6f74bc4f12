"""The runner: walks a plan's steps, skips finished ones (see `mot_plugin.rundir`), runs the rest
through the hooks, at most `mot.launch.parallel` at once.

Anything in an unfinished step's output directory is a leftover and is cleared before the step runs
again.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pluggy

from mot_plugin.atomic import fsync_tree, remove_tree, write_json
from mot_plugin.diagnostics import merge_diagnostics
from mot_plugin.environment import ENVIRONMENT_FILE, environment
from mot_plugin.errors import StepFailed
from mot_plugin.eta import eta_line
from mot_plugin.planner import Plan
from mot_plugin.rundir import (CURRENT_FILE, check_paths, clear_step, config_digest, diagnostics_path,
                               last_progress, read_result, run_lock, step_state, write_configs)
from mot_plugin.results import StepResult
from mot_plugin.sizes import human_bytes, weights_bytes
from mot_plugin.steps import Step


class NotEnoughDisk(StepFailed):
    """The disk holding the run directory has too little room for the next round."""


def run_plan(plan: Plan, hook: pluggy.HookRelay, echo: Callable[[str], None] = print) -> dict[str, StepResult]:
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
        self.results: dict[str, StepResult] = {}
        self.unfinished: set[str] = set()
        """Steps of this run not finished yet: what they read is kept."""
        self.running: dict[str, float] = {}
        self.finished: queue.Queue[tuple[Step, StepResult | None, BaseException | None]] = queue.Queue()
        self.disk_checked: set[int] = set()
        self.configs: dict[str, str | None] = {}

    def todo(self) -> list[Step]:
        """Steps to run: those not done; a done step whose output others read but is gone (unless it
        is a branch or candidate whose weights were deleted after use) and every step after it; and any
        finished branch or candidate whose weights were deleted but that a step to run reads again."""
        ids = {s.id for s in self.plan.steps if step_state(s) != "done"}
        lost = {s.id for s in self.plan.steps if s.id not in ids and s.read_later
                and not s.output_dir.exists() and not self.plan.prunable(s)}
        while more := {s.id for s in self.plan.steps if lost.intersection(s.deps)} - lost:
            lost |= more
        ids |= lost
        grew = True
        while grew:
            needed = {d for i in ids for d in self.by_id[i].deps
                      if self.by_id[d].checkpoint and not self.by_id[d].output_dir.exists()}
            grew = not needed <= ids
            ids |= needed
        return [s for s in self.plan.steps if s.id in ids]

    def run(self) -> dict[str, StepResult]:
        pending = self.todo()
        self.unfinished = {s.id for s in pending}
        for step in self.plan.steps:
            if step not in pending:
                self.results[step.id] = read_result(step)
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
        if step.trains and step.baseline is None:
            self._check_disk(step.round)
        clear_step(step, self.recipe.run_dir)
        self.configs[step.id] = config_digest(step)
        self.echo(f"{self.number[step.id]}: running (log: {step.log_path})")
        self.running[step.id] = time.time()
        self._write_current()
        threading.Thread(target=self._execute, args=(step,), daemon=True).start()

    def _execute(self, step: Step) -> None:
        """In a thread of its own: run the step's hook, record a failure, report back."""
        try:
            with _progress(step, self.echo, self.running[step.id]):
                result = step.run(self.hook, self.recipe)
            if result is None:
                raise StepFailed(f"{step.id}: no plugin ran this {step.kind} step")
            result = step.result(result, step.id)
            if step.diagnosed:
                result = result.model_copy(update={"diagnostics": self._diagnose(step)})
            if config_digest(step) != self.configs[step.id]:
                raise StepFailed(f"{step.config_path} changed while {step.id} ran; run again")
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
            write_json(diagnostics_path(step), found)
        return found

    def _finish(self, step: Step, result: StepResult, started: float) -> None:
        seconds = round(time.time() - started, 2)
        write_json(step.marker_path, {"fingerprint": step.fingerprint, "config_sha256": self.configs[step.id],
                                      "seconds": seconds, "result": result.model_dump(mode="json")})
        self.results[step.id] = result
        self.unfinished.discard(step.id)
        brief = result.brief()
        self.echo(f"{self.number[step.id]}: done in {seconds:.1f}s{', ' + brief if brief else ''}")
        eta = eta_line(self.plan)
        if eta:
            self.echo(f"    {eta}")
        for warning in (getattr(result, "diagnostics", None) or {}).get("warnings", []):
            self.echo(f"    {step.id}: warning: {warning}")
        if step.ends_round:  # the round's evaluations on the test set may come at the end of the run
            round_steps = [s for s in self.plan.steps if s.round == step.round and s.baseline is None]
            student = self.plan.round_students()[step.round - 1].output_dir
            self.hook.mot_round_end(recipe=self.recipe, round=step.round, student=student,
                                    results={s.id: self.results[s.id] for s in round_steps if s.id in self.results})
        for dep in step.deps:  # weights no step still to run reads
            used = self.by_id[dep]
            readers = self.plan.readers(used)
            if (self.plan.prunable(used) and self.unfinished.isdisjoint(r.id for r in readers)
                    and all(step_state(r) == "done" for r in readers)):
                remove_tree(used.output_dir, self.recipe.run_dir)

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
        writes = sum(1 for s in self.plan.steps if s.round == round_ and s.baseline is None and s.checkpoint
                     and step_state(s) != "done")
        free = shutil.disk_usage(self.recipe.run_dir).free
        if free < writes * size:
            raise NotEnoughDisk(f"round {round_} needs about {human_bytes(writes * size)} for {writes} checkpoints, "
                                f"but {self.recipe.run_dir} has {human_bytes(free)} free; free some space and "
                                f"run again")


PROGRESS_SECONDS = 15.0


@contextmanager
def _progress(step: Step, echo: Callable[[str], None], started: float) -> Iterator[None]:
    """While the step runs, echo how far its log's progress bar got (at most every 15 s)."""
    stop = threading.Event()

    def watch() -> None:
        last = None
        while not stop.wait(PROGRESS_SECONDS):
            progress = last_progress(step)
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
