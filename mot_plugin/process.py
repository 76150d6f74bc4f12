"""Run a step's `python -m MODULE ARGS` with its output in a log file, and never leave it orphaned:
cold (a new Python process per step) or warm (a fork of one long-lived server that has imported
everything once, see `mot_plugin.warm`)."""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING

from mot_plugin.errors import StepFailed

if TYPE_CHECKING:
    from mot_plugin.recipe import Recipe


def python_command(module: str, *args: str) -> list[str]:
    """`python -P -m MODULE ARGS`: -P keeps the working directory off sys.path, so a stray `yaml.py`
    beside the recipe is never imported by a step."""
    return [sys.executable, "-P", "-m", module, *args]


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGKILL when its parent (the thread that started it) dies, even by SIGKILL."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


WARM_LOG = "warm.log"
"""The warm server's own output, in the run directory."""


def warm_dir(recipe: Recipe) -> Path | None:
    """The run directory whose warm server runs this recipe's local steps; None when they run cold."""
    return recipe.run_dir if recipe.mot.launch.executor == "warm" else None


def run_logged(step_id: str, cmd: list[str], log_path: Path, env: dict[str, str] | None = None,
               warm_in: Path | None = None) -> None:
    """Run `cmd`, appending stdout and stderr to `log_path`; raise `StepFailed` if it fails.

    With `warm_in` (a run directory), a `python_command` runs in a fork of that run's warm server
    instead of a new process: the same log, exit code and `StepFailed`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(f"$ {' '.join(cmd)}\n")
    env = {**os.environ, **(env or {})}
    if warm_in is not None and cmd[:3] == python_command("")[:3]:
        code = warm_executor(warm_in / WARM_LOG).run(cmd[3], cmd[4:], log_path, env)
    else:
        with log_path.open("a") as log:
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                  preexec_fn=die_with_parent).returncode
    if code != 0:
        raise StepFailed(f"{step_id} failed (exit code {code}); see {log_path}")


class WarmExecutor:
    """The client of one warm server: sends requests, hands each reply to the thread that waits for it."""

    def __init__(self, server_log: Path, preload: list[str] | None = None):
        self.lock = threading.Lock()
        self.waiting: dict[int, list] = {}
        self.next_id = 0
        self.started = threading.Event()
        self.proc: subprocess.Popen | None = None
        self.server_log = server_log
        self.preload = preload or []
        self.error: BaseException | None = None
        self.gone = False
        # The thread that starts the server lives as long as the server: PR_SET_PDEATHSIG fires when
        # the starting *thread* ends, and a step's thread ends with its step.
        threading.Thread(target=self._own, daemon=True, name="mot-warm").start()
        self.started.wait()
        if self.error is not None:
            raise self.error

    def _own(self) -> None:
        try:
            self.server_log.parent.mkdir(parents=True, exist_ok=True)
            with self.server_log.open("a") as log:
                self.proc = subprocess.Popen(python_command("mot_plugin.warm", *self.preload), stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=log, preexec_fn=die_with_parent)
        except BaseException as err:  # noqa: BLE001 - raised in the caller's thread
            self.error = err
            self.started.set()
            return
        self.started.set()
        self._read(self.proc.stdout)
        self.proc.wait()  # the server closes its replies before it exits: outlive it

    def _read(self, replies: IO[bytes]) -> None:
        for line in replies:
            reply = json.loads(line)
            with self.lock:
                slot = self.waiting.pop(reply["id"])
            slot[1] = reply["code"]
            slot[0].set()
        with self.lock:  # the server is gone: whoever still waits fails
            for slot in self.waiting.values():
                slot[1] = None
                slot[0].set()
            self.waiting.clear()
            self.gone = True

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def run(self, module: str, args: list[str], log_path: Path, env: dict[str, str]) -> int:
        """Run the module in a fork of the server; wait for it; return its exit code."""
        slot = [threading.Event(), None]
        with self.lock:
            self.next_id += 1
            request = {"id": self.next_id, "module": module, "args": list(args), "log": str(log_path.absolute()),
                       "env": env, "cwd": os.getcwd()}
            try:
                if self.gone:
                    raise BrokenPipeError
                self.waiting[self.next_id] = slot
                self.proc.stdin.write((json.dumps(request) + "\n").encode())
                self.proc.stdin.flush()
            except (OSError, ValueError):  # the server is gone: this step fails like one it was running
                self.waiting.pop(self.next_id, None)
                slot[0].set()
        slot[0].wait()
        if slot[1] is None:
            with log_path.open("a") as log:
                log.write(f"mot: the warm executor stopped before this step ended; see {self.server_log}\n")
            return 1
        return slot[1]

    def close(self) -> None:
        """Close the server's input: it kills whatever still runs and exits."""
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_warm: WarmExecutor | None = None
_warm_lock = threading.Lock()


def warm_executor(server_log: Path) -> WarmExecutor:
    """This process's warm server, started on first use (or again if it died)."""
    global _warm
    with _warm_lock:
        if _warm is None or not _warm.alive():
            _warm = WarmExecutor(server_log)
        return _warm


def stop_warm_executor() -> None:
    """Stop this process's warm server, if one runs (registered to run when the process exits)."""
    global _warm
    with _warm_lock:
        if _warm is not None:
            _warm.close()
            _warm = None


atexit.register(stop_warm_executor)
