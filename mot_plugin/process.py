"""Run a command with its output in a log file, and never leave it orphaned."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path


def python_command(module: str, *args: str) -> list[str]:
    """`python -P -m MODULE ARGS`: -P keeps the working directory off sys.path, so a stray `yaml.py`
    beside the recipe is never imported by a step."""
    return [sys.executable, "-P", "-m", module, *args]


class StepFailed(RuntimeError):
    """A step's command failed; the message is one line that names its log."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGKILL when `mot run` dies, even by SIGKILL."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_logged(step_id: str, cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
    """Run `cmd`, appending stdout and stderr to `log_path`; raise `StepFailed` if it fails."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        code = subprocess.run(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            preexec_fn=_die_with_parent,
        ).returncode
    if code != 0:
        raise StepFailed(f"{step_id} failed (exit code {code}); see {log_path}")
