"""The Slurm launcher. Fast: the job script's text and the missing-Slurm error. Slow: a real
single-node Slurm (scripts/slurm-up.sh, torn down after) runs a tiny MoT round with the real Axolotl,
a failing branch, an interrupted `mot run`, an orphaned job, and a job script resubmitted by hand.

The slow tests need Slurm installed and root (`make slurm`, which `make test` runs). Without them
they fail, unless MOT_SKIP_SLURM=1 says to skip them (for a developer without root)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import free_port, recipe_data, write_recipe
from mot_plugin.builtin import slurm_launcher
from mot_plugin.planner import plan_run
from mot_plugin.plugins import plugin_manager
from mot_plugin.recipe import Launch, RecipeError, load_recipe
from mot_plugin.registry import collect
from mot_plugin.steps import Step, markers

ROOT = Path(__file__).parents[1]
SKIP_ENV = "MOT_SKIP_SLURM"
FAST_POLL = {"poll_seconds": 0.5}


def _plan(path: Path):
    recipe = load_recipe(path)
    pm = plugin_manager(recipe.mot.plugins)
    pm.hook.mot_check_recipe(recipe=recipe)
    return plan_run(recipe, pm.hook)


def _slurm(recipe):
    """The recipe's Slurm settings, as the registry passes them to the launcher."""
    return collect(plugin_manager(()).hook).launcher(recipe)[1]


def test_job_script_text(make_recipe, tmp_path):
    launch = {"launcher": "slurm", "processes": 2, "port": 31000,
              "slurm": {"sbatch_args": ["--partition=gpu", "--gres=gpu:8", "--comment=two words"], "setup": ["source /opt/venv/bin/activate"]}}
    plan = _plan(make_recipe(rounds=1, launch=launch))
    step = next(s for s in plan.steps if s.kind == "branch")
    env = slurm_launcher.job_env({"HF_HUB_OFFLINE": "1", "HF_TOKEN": "secret", "PYTHONPATH": "/src", "HOME": "/root"})
    assert env == {"AXOLOTL_DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": "/src", "PYTHONUNBUFFERED": "1"}
    text = slurm_launcher.job_script(plan.recipe, step, _slurm(plan.recipe), Path("/work dir"), env)
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert f"#SBATCH --job-name=mot-{step.id}" in lines
    assert f"#SBATCH --output={step.log_path}" in lines
    assert lines.index("#SBATCH --partition=gpu") + 1 == lines.index("#SBATCH --gres=gpu:8")
    assert '#SBATCH --comment="two words"' in lines  # sbatch reads quotes there
    assert "set -euo pipefail" in lines and "cd '/work dir'" in lines
    # setup, then the environment, then the branch, which is the last line
    assert lines.index("source /opt/venv/bin/activate") < lines.index("export HF_HUB_OFFLINE=1") < len(lines) - 1
    assert "secret" not in text
    assert "MOT_PORT=$(( 31000 + ${SLURM_JOB_ID:-0} % 500 ))" in lines
    assert lines[-1].endswith(f'--num_processes 2 --main_process_port "$MOT_PORT" -m axolotl.cli.train {step.config_path}')
    assert f"MOT_EXIT_FILE={step.config_path.parent / 'job.exitcode'}" in lines
    script = tmp_path / "job.sh"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_missing_sbatch_is_one_line(make_recipe, monkeypatch):
    recipe_file = make_recipe(rounds=1, launch={"launcher": "slurm"})
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RecipeError, match=r"^mot.launch.launcher: slurm needs sbatch and squeue on PATH$"):
        _plan(recipe_file)


# ---- a real Slurm ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> dict[str, str]:
    """A single-node Slurm for this module; yields the environment its clients need (SLURM_CONF)."""
    needed = ("sbatch", "squeue", "scancel", "scontrol", "sinfo", "slurmctld", "slurmd", "munged")
    missing = [c for c in needed if not shutil.which(c) and not Path("/usr/sbin", c).exists()]
    problem = (f"Slurm is not installed ({', '.join(missing)} missing)" if missing
               else None if os.geteuid() == 0 else "starting the test Slurm needs root")
    if problem:
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(f"{problem}; skipped because {SKIP_ENV}=1")
        pytest.fail(f"{problem}: run `make slurm` as root, or set {SKIP_ENV}=1 to skip the Slurm tests")
    base = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "SLURM_BASE": str(base), "SLURM_CTLD_PORT": str(free_port()),
           "SLURMD_PORT": str(free_port())}
    up = subprocess.run(["bash", str(ROOT / "scripts/slurm-up.sh")], env=env, capture_output=True, text=True,
                        timeout=180)
    try:
        if up.returncode != 0:
            pytest.fail(f"scripts/slurm-up.sh failed: {up.stdout[-2000:]} {up.stderr[-2000:]}")
        yield {**os.environ, "SLURM_CONF": str(base / "slurm.conf")}
    finally:
        subprocess.run(["bash", str(ROOT / "scripts/slurm-down.sh")], env=env, timeout=180)


def mot(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mot_plugin.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=1500, env=env)


def _where(branch: Path) -> dict:
    return json.loads((branch / "where.json").read_text())


def _gone(job_id: str, env: dict[str, str], seconds: float = 60) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not subprocess.run(["squeue", "-h", "-j", job_id], env=env, capture_output=True, text=True).stdout.strip():
            return True
        time.sleep(0.5)
    return False


def _job_state(job_id: str, env: dict[str, str]) -> str:
    shown = subprocess.run(["scontrol", "show", "job", "-o", job_id], env=env, capture_output=True, text=True).stdout
    return shown.split("JobState=")[1].split()[0] if "JobState=" in shown else "?"


@pytest.fixture(scope="module")
def slurm_round(slurm, toy, tmp_path_factory) -> Path:
    """2 teachers x 1 round x 3 steps, both branches as Slurm jobs at once, the real Axolotl."""
    tmp = tmp_path_factory.mktemp("slurm-round")
    data = recipe_data(toy, tmp / "run", rounds=1, keep_branches=True,
                       launch={"launcher": "slurm", "parallel": 2, "slurm": FAST_POLL})
    started = time.time()
    result = mot("run", str(write_recipe(tmp / "recipe.yaml", data)), cwd=tmp, env=slurm)
    print(f"\nslurm round: {time.time() - started:.1f}s wall")
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp / "run"


@pytest.mark.slow
def test_round_runs_branches_as_slurm_jobs(slurm_round, slurm):
    ids = set()
    for teacher in ("brief", "wordy"):
        branch = slurm_round / f"round-01/branch-{teacher}"
        where = _where(branch)
        assert where["launcher"] == "slurm" and where["job_id"].isdigit() and where["node"]
        ids.add(where["job_id"])
        script = branch / "job.sh"
        assert where["script"] == str(script)
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
        assert f"#SBATCH --job-name=mot-round-01/branch-{teacher}" in script.read_text()
        assert (branch / "job.exitcode").read_text().strip() == "0"
        assert f"mot: job {where['job_id']} on " in (branch / "train.log").read_text()
        assert json.loads((branch / "done.json").read_text())["result"]["steps"] == 3
    assert len(ids) == 2
    for job_id in sorted(ids):  # for the record: queueing and running time (1 s resolution)
        times = dict(re.findall(r"(SubmitTime|StartTime|EndTime)=(\S+)", subprocess.run(
            ["scontrol", "show", "job", "-o", job_id], env=slurm, capture_output=True, text=True).stdout))
        print(f"\nslurm job {job_id}: {times}")
    assert (slurm_round / "round-01/merged/model.safetensors").is_file()
    status = mot("status", str(slurm_round), cwd=slurm_round.parent, env=slurm)
    assert status.returncode == 0
    for job_id in ids:
        assert f"slurm job {job_id}" in status.stdout


@pytest.mark.slow
def test_job_script_resubmits_by_hand(slurm_round, slurm):
    branch = slurm_round / "round-01/branch-wordy"
    before = json.loads((branch / "model/mot_result.json").read_text())
    shutil.rmtree(branch / "model")
    (branch / "job.exitcode").unlink()
    # a person's shell: no PYTHONPATH or offline settings of mot's; the script carries them
    env = {k: v for k, v in slurm.items() if k not in ("PYTHONPATH", "HF_HUB_OFFLINE", "AXOLOTL_DO_NOT_TRACK")}
    done = subprocess.run(["sbatch", "--wait", str(branch / "job.sh")], cwd="/", env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr + (branch / "train.log").read_text()[-3000:]
    assert (branch / "job.exitcode").read_text().strip() == "0"
    again = json.loads((branch / "model/mot_result.json").read_text())
    assert again["steps"] == before["steps"] == 3
    assert again["final_train_loss"] == pytest.approx(before["final_train_loss"], rel=1e-4)


@pytest.mark.slow
def test_failing_branch_names_job_and_log(slurm, toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", teachers=("wordy", "brief"), rounds=1, steps=1,
                       launch={"launcher": "slurm", "slurm": FAST_POLL})
    data["mot"]["teachers"][0]["overrides"] = {"optimizer": "no_such_optimizer"}
    result = mot("run", str(write_recipe(tmp_path / "recipe.yaml", data)), cwd=tmp_path, env=slurm)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("mot: error:")]
    job_id = _where(tmp_path / "run/round-01/branch-wordy")["job_id"]
    log = tmp_path / "run/round-01/branch-wordy/train.log"
    assert len(errors) == 1, result.stderr
    assert f"round-01/branch-wordy failed (Slurm job {job_id}, state FAILED, exit code 1); see {log}" in errors[0]
    assert "no_such_optimizer" in log.read_text()
    assert not (tmp_path / "run/round-01/branch-brief/model").exists()


@pytest.mark.slow
def test_interrupted_run_cancels_its_job(slurm, toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", rounds=1, launch={"launcher": "slurm", "slurm": FAST_POLL})
    proc = subprocess.Popen([sys.executable, "-m", "mot_plugin.cli", "run",
                             str(write_recipe(tmp_path / "recipe.yaml", data))],
                            cwd=tmp_path, env=slurm, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    where = tmp_path / "run/round-01/branch-brief/where.json"
    deadline = time.time() + 300
    while not where.exists():
        assert proc.poll() is None and time.time() < deadline, "no job was submitted"
        time.sleep(0.2)
    job_id = _where(where.parent)["job_id"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert _gone(job_id, slurm), f"job {job_id} outlived the interrupted mot run"
    assert _job_state(job_id, slurm) == "CANCELLED"


@pytest.mark.slow
def test_orphaned_job_is_cancelled_before_resubmitting(slurm, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm["SLURM_CONF"])
    branch = tmp_path / "round-01/branch-x"
    step = Step(id="round-01/branch-x", kind="branch", spec=None, config={}, config_path=branch / "axolotl.yaml",
                log_path=branch / "train.log", **markers(branch), fingerprint="f")

    def sleeper(name: str) -> str:
        return subprocess.run(["sbatch", "--parsable", f"--job-name={name}", f"--output={tmp_path}/%j.out",
                               "--wrap", "sleep 300"], capture_output=True, text=True, check=True).stdout.strip()

    other = sleeper("someone-else")  # a reused job id must not cancel a stranger's job
    step.record_where(launcher="slurm", job_id=other, script="", node=None)
    assert slurm_launcher.cancel_orphan(step) is None
    orphan = sleeper(f"mot-{step.id}")
    step.record_where(launcher="slurm", job_id=orphan, script="", node=None)
    try:
        assert slurm_launcher.cancel_orphan(step) == orphan
        assert _gone(orphan, slurm, seconds=5) and _job_state(orphan, slurm) == "CANCELLED"
        assert not _gone(other, slurm, seconds=1)
    finally:
        subprocess.run(["scancel", other, orphan])


def test_scale_out_doc_matches_the_script(make_recipe):
    doc = (ROOT / "docs/scale-out.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", doc, flags=re.S) if "launcher: slurm" in b]
    launches = [Launch.model_validate(yaml.safe_load(block)["mot"]["launch"]) for block in blocks]
    assert len(launches) == 2 and all(la.launcher == "slurm" and la.processes == 8 for la in launches)
    launch = launches[0]
    script_block = re.findall(r"```bash\n(#!/bin/bash.*?)```", doc, flags=re.S)[0]
    plan = _plan(make_recipe(rounds=1, launch=launch.model_dump()))
    step = next(s for s in plan.steps if s.kind == "branch")
    text = slurm_launcher.job_script(plan.recipe, step, _slurm(plan.recipe), Path("/shared/work"), {})
    for line in text.splitlines():
        if step.id not in line and "python" not in line.lower():
            assert line in script_block.splitlines(), f"docs/scale-out.md's job script lacks {line!r}"
