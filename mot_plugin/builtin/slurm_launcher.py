"""Built-in Slurm launcher (`mot.launch.launcher: slurm`): one `sbatch` job per branch.

The job's script is written into the branch's directory (`job.sh`, next to `axolotl.yaml`), so a
person can read it and resubmit it by hand (`sbatch job.sh`). The script writes its exit code to
`job.exitcode` when it ends: success is known without `sacct` (which needs slurmdbd). `mot run`
polls `squeue` until the job is gone, cancels its jobs when it is interrupted, and cancels an
orphaned job of a killed earlier `mot run` before it submits the branch again. Prepare, merge and
evaluation steps still run on the machine of `mot run`; the run directory must be on a filesystem
the nodes share.
"""

from __future__ import annotations

import atexit
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mot_plugin.atomic import read_json, remove_tree, write_text
from mot_plugin.findings import Description, Finding
from mot_plugin.hookspecs import hookimpl
from mot_plugin.process import StepFailed
from mot_plugin.recipe import Line, Recipe, RecipeError
from mot_plugin.registry import Launcher
from mot_plugin.results import BranchResult
from mot_plugin.steps import Step
from mot_plugin.train_command import BRANCH_ENV, branch_command, branch_result

SCRIPT_FILE = "job.sh"
EXIT_FILE = "job.exitcode"
PORT_SPAN = 500
"""A multi-process branch's rendezvous port is `launch.port + SLURM_JOB_ID % PORT_SPAN`."""
PASS_ENV = re.compile(r"^(PYTHONPATH|HF_[A-Z_]+|TRANSFORMERS_[A-Z_]+|AXOLOTL_[A-Z_]+|WANDB_(MODE|PROJECT|DIR))$")
"""Variables of `mot run`'s environment written into the script (if set), so a resubmitted job
sees the same; names with secrets (tokens, keys) are never written."""
SECRET = re.compile(r"TOKEN|KEY|SECRET|PASSWORD")
SQUEUE_OUTAGE_SECONDS = 600.0
"""`squeue` failing (not "job gone": the controller unreachable) this long fails the step."""
_PORT = "\0port\0"

_active: dict[str, str] = {}
"""Job ids this process has submitted and not yet seen end, keyed by step id."""
_active_lock = threading.Lock()
_atexit_registered = False


class SlurmSettings(BaseModel):
    """The Slurm launcher's settings (`mot.launch.slurm`): one `sbatch` job per branch, its script
    kept in the branch's directory."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    sbatch_args: list[Line] = []
    """Extra `sbatch` options, for example `--partition=gpu`, `--gres=gpu:8`, `--time=04:00:00`."""
    setup: list[Line] = []
    """Shell lines run in the job before the branch (for example `source /path/to/venv/bin/activate`)."""
    poll_seconds: float = Field(default=5, gt=0)
    """How often `squeue` is asked whether a job has ended."""


def check(recipe: Recipe, settings: SlurmSettings) -> None:
    if not (shutil.which("sbatch") and shutil.which("squeue")):
        raise RecipeError("mot.launch.launcher: slurm needs sbatch and squeue on PATH")


def describe(recipe: Recipe, step: Step, settings: SlurmSettings) -> Description:
    """What `mot plan` and `mot check` show: the job script of the first branch."""
    return Description(f"job script of {step.id} (every branch's differs only in its paths)",
                       job_script(recipe, step, settings, Path.cwd(), job_env()))


def findings(recipe: Recipe, settings: SlurmSettings) -> list[Finding]:
    """The setup lines every job runs (risky: shell), and the sbatch options."""
    return [*(Finding("executes", "shell", f"mot.launch.slurm.setup.{i}", line) for i, line in enumerate(settings.setup)),
            Finding("executes", None, "mot.launch.slurm.sbatch_args", " ".join(settings.sbatch_args))]


@hookimpl
def mot_register(register) -> None:
    register(Launcher("slurm", run_branch=run_branch, settings=SlurmSettings, check=check, describe=describe,
                      findings=findings, risks={"shell": "shell lines run in every Slurm job"}))


def _exit_path(step: Step) -> Path:
    return step.config_path.parent / EXIT_FILE


def _script_path(step: Step) -> Path:
    return step.config_path.parent / SCRIPT_FILE


def job_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """What the script exports: the branch environment, plus the passed-through variables of
    `mot run`'s environment (Hugging Face offline/cache settings, PYTHONPATH, ...)."""
    environ = os.environ if environ is None else environ
    passed = {k: v for k, v in environ.items() if PASS_ENV.match(k) and not SECRET.search(k)}
    return dict(sorted({**passed, **BRANCH_ENV}.items()))


def _sbatch_value(value: str) -> str:
    """A `#SBATCH` option value; sbatch reads double quotes there (paths with spaces)."""
    return f'"{value}"' if re.search(r"\s", value) else value


def _sbatch_arg(arg: str) -> str:
    """An `sbatch_args` entry as a `#SBATCH` line's option (`--comment=two words` quoted)."""
    name, eq, value = arg.partition("=")
    return f"{name}={_sbatch_value(value)}" if eq and name.startswith("-") else arg


def job_script(recipe: Recipe, step: Step, slurm: SlurmSettings, workdir: Path, env: dict[str, str]) -> str:
    """The text of a branch's batch script."""
    exit_file = _exit_path(step).absolute()
    command = " ".join('"$MOT_PORT"' if arg == _PORT else shlex.quote(arg)
                       for arg in branch_command(recipe, step, _PORT))  # type: ignore[arg-type]
    lines = [
        "#!/bin/bash",
        f"# {step.id}: written by mot run; resubmit by hand with `sbatch {_script_path(step).absolute()}`.",
        f"#SBATCH --job-name={_sbatch_value('mot-' + step.id)}",
        f"#SBATCH --output={_sbatch_value(str(step.log_path.absolute()))}",
        *(f"#SBATCH {_sbatch_arg(arg)}" for arg in slurm.sbatch_args),
        "set -euo pipefail",
        f"MOT_EXIT_FILE={shlex.quote(str(exit_file))}",
        "rm -f \"$MOT_EXIT_FILE\"",
        "# the exit code, whatever ends the job (sacct needs slurmdbd; this file does not)",
        'mot_exit() { local code=$?; echo "$code" > "$MOT_EXIT_FILE.tmp" && mv "$MOT_EXIT_FILE.tmp" "$MOT_EXIT_FILE"; }',
        "trap mot_exit EXIT",
        "trap 'exit 143' TERM",
        "trap 'exit 130' INT",
        f"cd {shlex.quote(str(workdir))}",
        *slurm.setup,
        *(f"export {name}={shlex.quote(value)}" for name, value in env.items()),
        'export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_ON_NODE:-1}}"',
        f'MOT_PORT=$(( {recipe.mot.launch.port} + ${{SLURM_JOB_ID:-0}} % {PORT_SPAN} ))',
        'echo "mot: job ${SLURM_JOB_ID:-(none)} on $(hostname) at $(date -Is)"',
        f"echo {shlex.quote('$ ' + command)}",
        command,
        "",
    ]
    return "\n".join(lines)


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no output")


def _queued(job_id: str) -> tuple[str, str, str] | None:
    """(state, nodes, name) while the job is queued, running or completing; None once it is gone.
    Raises `OSError` when `squeue` cannot answer (the controller is unreachable)."""
    done = _run(["squeue", "-h", "-j", job_id, "-o", "%T|%N|%j"])
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:
            return None
        raise OSError(_first_line(done.stderr))
    line = _first_line(done.stdout) if done.stdout.strip() else ""
    if not line:
        return None
    state, nodes, name = (line.split("|", 2) + ["", ""])[:3]
    return state, nodes, name


def _job_record(job_id: str) -> dict[str, str]:
    """`scontrol show job`'s fields (empty once Slurm has forgotten the job: MinJobAge)."""
    shown = _run(["scontrol", "show", "job", "-o", job_id])
    if shown.returncode != 0:
        return {}
    return dict(re.findall(r"(?:^|\s)(\w+)=(\S*)", shown.stdout))


def cancel_orphan(step: Step) -> str | None:
    """If an earlier `mot run` (killed) left this step's job queued or running, cancel it and wait
    until it is gone; return its id."""
    where = read_json(step.where_path) or {}
    job_id = str(where.get("job_id") or "")
    if where.get("launcher") != "slurm" or not job_id:
        return None
    try:
        queued = _queued(job_id)
    except OSError:
        return None
    if queued is None or queued[2] != f"mot-{step.id}":  # gone, or the id now names another job
        return None
    _run(["scancel", job_id])
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if _queued(job_id) is None:
                break
        except OSError:
            pass
        time.sleep(1)
    return job_id


def _cancel_active() -> None:
    """At exit of `mot run` (Ctrl-C, SIGTERM, an error): cancel the jobs still running."""
    with _active_lock:
        ids = list(_active.values())
        _active.clear()
    if ids:
        try:
            _run(["scancel", *ids])
        except (OSError, subprocess.SubprocessError):
            pass


def _track(step_id: str, job_id: str | None) -> None:
    global _atexit_registered
    with _active_lock:
        if job_id is None:
            _active.pop(step_id, None)
            return
        _active[step_id] = job_id
        if not _atexit_registered:
            atexit.register(_cancel_active)
            _atexit_registered = True


def submit(recipe: Recipe, step: Step, settings: SlurmSettings) -> str:
    """Write the branch's script and submit it; return the job id."""
    script = _script_path(step).absolute()
    write_text(script, job_script(recipe, step, settings, Path.cwd(), job_env()))
    script.chmod(0o755)
    _exit_path(step).unlink(missing_ok=True)
    step.log_path.parent.mkdir(parents=True, exist_ok=True)
    step.log_path.write_text("")  # an earlier attempt's log would show stale progress until the job starts
    submitted = _run(["sbatch", "--parsable", str(script)])
    job_id = submitted.stdout.strip().split(";")[0]
    if submitted.returncode != 0 or not job_id.isdigit():
        raise StepFailed(f"{step.id}: sbatch failed (exit code {submitted.returncode}: "
                         f"{_first_line(submitted.stderr + submitted.stdout)}); script {script}")
    return job_id


def wait(step: Step, job_id: str, where: dict[str, Any], poll: float) -> None:
    """Poll `squeue` every `poll` seconds until the job is gone; record its node once it runs."""
    failing_since: float | None = None
    while True:
        try:
            queued = _queued(job_id)
            failing_since = None
        except OSError as err:
            failing_since = failing_since or time.time()
            if time.time() - failing_since > SQUEUE_OUTAGE_SECONDS:
                raise StepFailed(f"{step.id}: squeue has failed for {SQUEUE_OUTAGE_SECONDS:.0f}s ({err}); "
                                 f"Slurm job {job_id} may still run; see {step.log_path}") from None
            queued = ("UNKNOWN", "", "")
        if queued is None:
            return
        nodes = queued[1]
        if queued[0] == "RUNNING" and nodes and where.get("node") != nodes:
            where["node"] = nodes
            step.record_where(**where)
        time.sleep(poll)


def outcome(step: Step, job_id: str) -> BranchResult:
    """The branch's result, or `StepFailed` naming the job, how it ended and its log."""
    try:
        code = _exit_path(step).read_text().strip()
    except FileNotFoundError:
        code = None
    if code == "0":
        try:
            return branch_result(step)
        except StepFailed as err:
            raise StepFailed(f"Slurm job {job_id}: {err}") from None
    record = _job_record(job_id)
    how = [f"state {record['JobState']}"] if record.get("JobState") else []
    if code is not None:
        how.append(f"exit code {code}")
    elif record.get("ExitCode"):
        how.append(f"exit code {record['ExitCode']}")
    if not how:
        how.append(f"no {EXIT_FILE} written")
    raise StepFailed(f"{step.id} failed (Slurm job {job_id}, {', '.join(how)}); see {step.log_path}")


def run_branch(recipe: Recipe, step: Step, settings: SlurmSettings) -> BranchResult:
    """The Slurm launcher: the branch is one `sbatch` job; wait for it, then read its result."""
    if cancel_orphan(step):
        remove_tree(step.output_dir, recipe.run_dir)  # what the orphan wrote after the runner cleared it
    job_id = submit(recipe, step, settings)
    _track(step.id, job_id)  # until the job is gone: `mot run` exiting cancels it
    where: dict[str, Any] = {"launcher": "slurm", "job_id": job_id, "script": str(_script_path(step).absolute()),
                             "node": None}
    step.record_where(**where)
    wait(step, job_id, where, settings.poll_seconds)
    _track(step.id, None)
    return outcome(step, job_id)
