"""The runner: walks a plan's steps, skips finished ones, runs the rest through the hooks.

A step is finished when its marker (`done.json`, written last and atomically) holds the step's
current fingerprint. Anything else in its output directory is a leftover and is cleared before the
step runs again. One lock per run directory keeps two `mot run` apart.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pluggy

from mot_plugin.planner import Plan
from mot_plugin.recipe import dump_yaml
from mot_plugin.specs import Step

LOCK_FILE = ".lock"
CURRENT_FILE = "current.json"


class RunLocked(RuntimeError):
    """Another `mot run` holds the run directory."""


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a reader sees the old file or the new one, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_configs(plan: Plan) -> None:
    """Write the resolved recipe and every step's config file (what `mot plan` leaves behind)."""
    write_text(plan.recipe.run_dir / "recipe.yaml", dump_yaml(plan.recipe.to_dict()))
    for step in plan.steps:
        header = f"# {step.id}: written by mot from {plan.recipe.source}; edit the recipe, not this file.\n"
        write_text(step.config_path, header + dump_yaml(step.config))


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
    """Hold the run directory for one `mot run`; raise `RunLocked` if another has it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(run_dir)
            raise RunLocked(f"{run_dir} is in use by another mot run (pid {holder}); wait for it or stop it") from None
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


def _clear(step: Step) -> None:
    """Remove what an unfinished or outdated attempt of `step` left behind."""
    step.marker_path.unlink(missing_ok=True)
    step.failed_path.unlink(missing_ok=True)
    shutil.rmtree(step.output_dir, ignore_errors=True)


def run_plan(plan: Plan, hook: pluggy.HookRelay, echo: Callable[[str], None] = print) -> dict[str, dict]:
    """Run every step that is not done; return each step's result, keyed by step id."""
    run_dir = plan.recipe.run_dir
    results: dict[str, dict] = {}
    with run_lock(run_dir):
        write_configs(plan)
        for number, step in enumerate(plan.steps, 1):
            where = f"[{number}/{len(plan.steps)}] {step.id}"
            if step_state(step) == "done":
                results[step.id] = read_json(step.marker_path)["result"]
                echo(f"{where}: done earlier, skipped")
                continue
            _clear(step)
            echo(f"{where}: running (log: {step.log_path})")
            write_json(run_dir / CURRENT_FILE, {"step": step.id, "pid": os.getpid(), "started": time.time()})
            started = time.time()
            run_hook = {"branch": hook.mot_run_branch, "merge": hook.mot_run_merge, "eval": hook.mot_evaluate}[step.kind]
            try:
                with _progress(step, echo, started):
                    result = run_hook(recipe=plan.recipe, step=step)
                if result is None:
                    raise RuntimeError(f"{step.id}: no plugin ran this {step.kind} step")
            except Exception as err:
                write_json(step.failed_path, {"fingerprint": step.fingerprint, "error": str(err)})
                raise
            seconds = round(time.time() - started, 2)
            write_json(step.marker_path, {"fingerprint": step.fingerprint, "seconds": seconds, "result": result})
            results[step.id] = result
            echo(f"{where}: done in {seconds:.1f}s{_brief(result)}")
            if step.ends_round:
                round_steps = [s for s in plan.steps if s.round == step.round]
                student = next(s.output_dir for s in round_steps if s.kind == "merge")
                hook.mot_round_end(recipe=plan.recipe, round=step.round, student=student,
                                   results={s.id: results[s.id] for s in round_steps})
        (run_dir / CURRENT_FILE).unlink(missing_ok=True)
    return results


PROGRESS = re.compile(rb"(\d+)/(\d+) \[")
PROGRESS_SECONDS = 15.0


@contextmanager
def _progress(step: Step, echo: Callable[[str], None], started: float) -> Iterator[None]:
    """While the step runs, echo how far its log's progress bar got (at most every 15 s)."""
    stop = threading.Event()

    def watch() -> None:
        last = None
        while not stop.wait(PROGRESS_SECONDS):
            try:
                with step.log_path.open("rb") as log:
                    log.seek(max(0, step.log_path.stat().st_size - 4096))
                    found = PROGRESS.findall(log.read())
            except FileNotFoundError:
                continue
            if found and found[-1] != last:
                last = found[-1]
                echo(f"    {step.id}: {int(last[0])}/{int(last[1])}, {time.time() - started:.0f}s")

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
    """One row per step: its state, seconds, result summary and log."""
    run_dir = plan.recipe.run_dir
    current = read_json(run_dir / CURRENT_FILE) if is_running(run_dir) else None
    rows = []
    for step in plan.steps:
        state = step_state(step)
        if current and current.get("step") == step.id and state != "done":
            state = "running"
        marker = read_json(step.marker_path) or {}
        failed = read_json(step.failed_path) or {}
        rows.append({"step": step.id, "state": state, "seconds": marker.get("seconds"),
                     "result": marker.get("result") or {}, "error": failed.get("error"),
                     "log": str(step.log_path)})
    return rows
