"""The Ray launcher with real Axolotl on the toy student: two branches at once on a local Ray
cluster, a branch whose worker is killed runs again, a failing branch fails the run once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import free_port, recipe_data, write_recipe

from mot_plugin.builtin import ray_launcher
from mot_plugin.plugins import plugin_manager
from mot_plugin.recipe import RecipeError, parse_recipe
from mot_plugin.registry import collect

try:
    import psutil
    import ray  # noqa: F401
except ImportError:  # the slow tests need both; the fast ones run without Ray
    ray = psutil = None
needs_ray = pytest.mark.skipif(ray is None, reason="needs ray (pip install 'mot-plugin[ray]')")

RAY = Path(sys.executable).parent / "ray"
LOOPBACK = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
"""Ray then takes 127.0.0.1 as this node's address (and never rewrites 127.0.0.1 to the machine's IP);
no token (it would live in ~/.ray/auth_token, which any other Ray started on the machine rewrites)."""


def mot(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mot_plugin.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=LOOPBACK, **kwargs)


@pytest.fixture(scope="module")
def ray_cluster():
    """A one-node Ray cluster on 127.0.0.1 with 2 CPUs, in a process group of its own that teardown
    kills (never `ray stop`, which stops every Ray on the machine)."""
    temp = Path(tempfile.mkdtemp(prefix="mot-ray-", dir="/tmp"))  # short: Ray's socket paths have a limit
    port = free_port()
    cmd = [str(RAY), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
           "--num-cpus", "2", "--num-gpus", "0", "--object-store-memory", str(100 * 2**20),
           "--temp-dir", str(temp), "--disable-usage-stats", "--include-dashboard=false",
           "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port())]
    start = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True, env=LOOPBACK)
    try:
        output, _ = start.communicate(timeout=180)
        assert start.returncode == 0, output[-3000:]
        yield f"127.0.0.1:{port}"
    finally:
        try:
            os.killpg(start.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        shutil.rmtree(temp, ignore_errors=True)


def _wait(condition, seconds: float, what: str, interval: float = 0.05):
    deadline = time.time() + seconds
    while True:
        value = condition()
        if value:
            return value
        assert time.time() < deadline, f"waited {seconds:.0f}s for {what}"
        time.sleep(interval)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="ignore")
    except FileNotFoundError:
        return ""


def _where(branch: Path) -> dict:
    try:
        return json.loads((branch / "where.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _trainer(worker_pid: int):
    """The `axolotl.cli.train` process a Ray worker runs."""
    try:
        children = psutil.Process(worker_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    return next((c for c in children if "axolotl.cli.train" in " ".join(c.cmdline())), None)


def _gone(process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
@needs_ray
def test_two_branches_at_once_and_a_killed_worker_is_retried(toy, tmp_path, ray_cluster):
    run = tmp_path / "run"
    launch = {"launcher": "ray", "parallel": 2, "ray": {"address": ray_cluster, "num_cpus": 1, "max_retries": 2}}
    recipe = write_recipe(tmp_path / "recipe.yaml", recipe_data(toy, run, rounds=1, steps=3, launch=launch))
    branches = [run / "round-01/branch-brief", run / "round-01/branch-wordy"]
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "mot_plugin.cli", "run", str(recipe)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=LOOPBACK)
    try:
        # both branches train at once: each has its own Ray worker and trainer before either is done
        def both_running():
            wheres = [_where(b) for b in branches]
            if any((b / "done.json").exists() for b in branches):
                pytest.fail("a branch finished before both were running")
            if all(w.get("worker_pid") for w in wheres) and all(_trainer(w["worker_pid"]) for w in wheres):
                return wheres
            if proc.poll() is not None:
                pytest.fail(f"mot run ended early: {proc.stderr.read()[-3000:]}")
            return None

        wheres = _wait(both_running, 480, "both branches' trainers")
        assert wheres[0]["worker_pid"] != wheres[1]["worker_pid"]
        # kill the worker of the first branch whose trainer has started training
        victim = _wait(lambda: next((b for b in branches if "Starting trainer" in _read(b / "train.log")), None),
                       120, "a branch to start training")
        where = _where(victim)
        assert where["attempt"] == 1 and where["launcher"] == "ray"
        trainer = _trainer(where["worker_pid"])
        assert trainer is not None, "the branch's trainer is not a child of its Ray worker"
        assert not (victim / "done.json").exists(), "the branch finished before its worker could be killed"
        os.kill(where["worker_pid"], signal.SIGKILL)
        killed = time.time()
        # PR_SET_PDEATHSIG: the trainer dies with the worker
        _wait(lambda: _gone(trainer), 10, "the killed worker's trainer to die")
        # the retried attempt runs on a new worker; `mot status` shows where
        retry = _wait(lambda: _where(victim).get("attempt") == 2 and _where(victim), 120, "the retry")
        status = mot("status", str(run), cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        line = next(ln for ln in status.stdout.splitlines() if ln.startswith(f"round-01/{victim.name} "))
        assert "running" in line and f"on ray: host {socket.gethostname()}, node_ip 127.0.0.1, " \
            f"worker_pid {retry['worker_pid']}" in line and "attempt 2" in line, line
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.time() - started
    assert proc.returncode == 0, out + err
    print(f"\nround with a killed worker: {elapsed:.1f}s (killed at {killed - started:.1f}s)")

    retried = _where(victim)
    assert retried["attempt"] == 2 and retried["worker_pid"] != where["worker_pid"]
    assert retried["task_id"] == where["task_id"]
    first_log = victim / "train.attempt-1.log"
    assert "Starting trainer" in _read(first_log) and "Starting trainer" in _read(victim / "train.log")
    other = next(b for b in branches if b != victim)
    assert _where(other)["attempt"] == 1 and not (other / "train.attempt-1.log").exists()
    for branch in branches:
        assert json.loads((branch / "done.json").read_text())["result"]["steps"] == 3
    assert (run / "round-01/merged/model.safetensors").is_file()

    leftovers = subprocess.run(["pgrep", "-f", str(run)], capture_output=True, text=True).stdout
    assert leftovers.strip() == "", "a branch's process outlived the run"


@pytest.mark.slow
@needs_ray
def test_failing_branch_under_ray_fails_once_with_one_line(toy, tmp_path):
    """A local Ray (no address): a branch that fails by itself is not retried."""
    data = recipe_data(toy, tmp_path / "run", teachers=("wordy", "brief"), rounds=1, steps=1,
                       launch={"launcher": "ray", "ray": {"max_retries": 2}})
    data["mot"]["teachers"][0]["overrides"] = {"optimizer": "no_such_optimizer"}
    result = mot("run", str(write_recipe(tmp_path / "recipe.yaml", data)), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("mot: error:")]
    branch = tmp_path / "run/round-01/branch-wordy"
    assert len(errors) == 1 and "round-01/branch-wordy failed (exit code" in errors[0], result.stderr
    assert f"see {branch / 'train.log'}" in errors[0]
    assert "no_such_optimizer" in (branch / "train.log").read_text()
    assert _where(branch)["attempt"] == 1 and not (branch / "train.attempt-1.log").exists(), "it was retried"
    assert not (tmp_path / "run/round-01/branch-brief/model").exists()


def _recipe(toy, tmp_path, launcher):
    return parse_recipe(recipe_data(toy, tmp_path / "run", launch={"launcher": launcher}))


def test_other_launchers_never_touch_ray(toy, tmp_path):
    recipe = _recipe(toy, tmp_path, "local")
    pm = plugin_manager()
    assert collect(pm.hook).launcher(recipe)[0].name == "local"
    pm.hook.mot_check_recipe(recipe=recipe)
    code = "import sys, mot_plugin.plugins as p; p.plugin_manager(); assert 'ray' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0, "ray imported eagerly"


def test_ray_launcher_without_ray_is_one_line(toy, tmp_path, monkeypatch):
    monkeypatch.setattr(ray_launcher, "_ray_installed", lambda: False)
    with pytest.raises(RecipeError) as err:
        plugin_manager().hook.mot_check_recipe(recipe=_recipe(toy, tmp_path, "ray"))
    assert str(err.value) == "mot.launch.launcher: ray needs the ray package (pip install 'mot-plugin[ray]')"
