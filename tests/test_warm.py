"""The warm executor against the cold path: the same log, exit code, one-line error, environment and
thread count; and no process left behind when the caller ends or dies."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mot_plugin import process
from mot_plugin.process import StepFailed, WarmExecutor, python_command, run_logged

PROBE_DIR = str(Path(__file__).parent / "warm_probe")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A warm server that preloaded torch and the Hub's settings (the real one preloads more)."""
    executor = WarmExecutor(tmp_path_factory.mktemp("warm") / "warm.log", preload=["torch", "huggingface_hub"])
    yield executor
    executor.close()
    assert executor.proc.returncode == 0


def run_both(server, monkeypatch, tmp_path, action: str, env: dict[str, str]) -> dict[str, dict]:
    """Run the probe cold and warm; return what each saw, its log and its error (if any)."""
    monkeypatch.setattr(process, "_warm", server)
    seen = {}
    for mode, warm_in in (("cold", None), ("warm", tmp_path)):
        out = tmp_path / f"{mode}.json"
        log = tmp_path / mode / "step.log"
        try:
            run_logged("round-01/branch-x", python_command("probe", str(out), action), log,
                       env={"PYTHONPATH": PROBE_DIR, **env}, warm_in=warm_in)
            error = None
        except StepFailed as err:
            error = str(err).replace(str(log), "LOG")
        seen[mode] = {**json.loads(out.read_text()), "log": log.read_text().replace(str(out), "OUT"), "error": error}
        seen[mode]["title"] = seen[mode]["title"].replace(str(out), "OUT")
    return seen


def test_a_warm_step_sees_what_a_cold_one_sees(server, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    seen = run_both(server, monkeypatch, tmp_path, "0", {"MOT_PROBE": "yes", "HF_HUB_OFFLINE": "1"})
    cold, warm = seen["cold"], seen["warm"]
    for key in ("threads", "cwd", "name", "probe_env", "offline", "log", "error"):
        assert warm[key] == cold[key], key
    assert warm["argv"][1:] == cold["argv"][1:] and cold["error"] is None and cold["offline"] is True
    assert cold["log"].startswith(f"$ {sys.executable} -P -m probe ") and cold["log"].endswith("probe ran\n")
    assert warm["ppid"] == server.proc.pid, "the warm step is a fork of the server"
    assert warm["title"] == cold["title"], "ps shows a warm step's command as it shows a cold one's"


def test_a_step_gets_the_threads_its_environment_asks_for(server, monkeypatch, tmp_path):
    seen = run_both(server, monkeypatch, tmp_path, "0", {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "0"})
    assert seen["warm"]["threads"] == seen["cold"]["threads"] == 1
    assert seen["warm"]["offline"] is seen["cold"]["offline"] is False


@pytest.mark.parametrize("action", ["3", "raise"])
def test_a_warm_failure_reads_like_a_cold_one(server, monkeypatch, tmp_path, action):
    seen = run_both(server, monkeypatch, tmp_path, action, {})
    cold, warm = seen["cold"], seen["warm"]
    code = 3 if action == "3" else 1
    assert warm["error"] == cold["error"] == f"round-01/branch-x failed (exit code {code}); see LOG"
    if action == "3":
        assert warm["log"] == cold["log"]
    else:  # the traceback's frames differ (runpy's), its last line does not
        assert warm["log"].splitlines()[-1] == cold["log"].splitlines()[-1] == "ValueError: the probe failed on purpose"


def test_steps_run_at_once(server, monkeypatch, tmp_path):
    """Two sleeping steps at once, both forks of one server: neither waits for the other."""
    monkeypatch.setattr(process, "_warm", server)
    outs = [tmp_path / f"{i}.json" for i in range(2)]
    errors = []

    def step(i: int) -> None:
        try:
            run_logged(f"s{i}", python_command("probe", str(outs[i]), "sleep"), tmp_path / f"{i}.log",
                       {"PYTHONPATH": PROBE_DIR}, tmp_path)
        except StepFailed as err:
            errors.append(str(err))

    threads = [threading.Thread(target=step, args=(i,), daemon=True) for i in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.time() + 60
    while not all(out.exists() for out in outs) and time.time() < deadline:
        time.sleep(0.1)
    pids = [json.loads(out.read_text())["pid"] for out in outs]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads), "a killed step's caller got no reply"
    assert sorted(errors) == [f"s{i} failed (exit code -9); see {tmp_path / f'{i}.log'}" for i in range(2)]


DRIVER = """
import sys, threading
from pathlib import Path
from mot_plugin import process
process._warm = process.WarmExecutor(Path(sys.argv[1]) / "warm.log", preload=["torch"])
if sys.argv[3] == "sleep":
    threading.Thread(target=process.run_logged, daemon=True,
                     args=("s", process.python_command("probe", sys.argv[2], "sleep"), Path(sys.argv[1]) / "s.log",
                           {"PYTHONPATH": sys.argv[4]}, Path(sys.argv[1]))).start()
    threading.Event().wait()
process.run_logged("s", process.python_command("probe", sys.argv[2], "0"), Path(sys.argv[1]) / "s.log",
                   {"PYTHONPATH": sys.argv[4]}, Path(sys.argv[1]))
"""


def _gone(pid: int, seconds: float = 20) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone too (its parent has not reaped it)
            if stat.read().split(")")[-1].split()[0] == "Z":
                return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("how", ["ends", "is killed"])
def test_no_process_outlives_the_caller(tmp_path, how):
    out = tmp_path / "probe.json"
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path), str(out),
                               "sleep" if how == "is killed" else "run", PROBE_DIR])
    if how == "ends":
        assert driver.wait(120) == 0
    else:
        deadline = time.time() + 120
        while not out.exists() and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)
        driver.kill()
        driver.wait()
    seen = json.loads(out.read_text())
    assert _gone(seen["pid"]), "the step outlived its caller"
    assert _gone(seen["ppid"]), "the warm server outlived its caller"


@pytest.mark.slow
def test_warm_and_cold_runs_give_the_same_weights_and_metrics(toy, tmp_path):
    """The same tiny recipe (2 teachers x 1 round x 2 steps, evaluated) run by `mot run` warm and cold:
    bitwise equal merged weights, equal losses and metrics; the warm server gone when `mot run` ends."""
    from safetensors.torch import load_file

    from conftest import recipe_data, write_recipe

    runs = {}
    for executor in ("warm", "cold"):
        data = recipe_data(toy, tmp_path / executor, rounds=1, steps=2, launch={"executor": executor},
                           eval={"data": str(toy["eval"]), "limit": 4, "max_new_tokens": 8, "batch_size": 4})
        recipe = write_recipe(tmp_path / f"{executor}.yaml", data)
        result = subprocess.run([sys.executable, "-m", "mot_plugin.cli", "run", str(recipe)], cwd=tmp_path,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        runs[executor] = tmp_path / executor
    warm, cold = runs["warm"], runs["cold"]
    assert (warm / "warm.log").is_file() and not (cold / "warm.log").exists()
    a, b = (load_file(run / "round-01/merged/model.safetensors") for run in (warm, cold))
    assert a.keys() == b.keys() and all(torch_equal(a[k], b[k]) for k in a)
    for marker in ("round-01/branch-brief/done.json", "round-01/branch-wordy/done.json", "round-01/merge.done.json",
                   "eval/round-00/done.json", "eval/round-01/done.json"):
        results = [json.loads((run / marker).read_text())["result"] for run in (warm, cold)]
        for result in results:
            for key in ("train_seconds", "process_seconds", "seconds"):
                result.pop(key, None)
        assert json.dumps(results[0]).replace(str(warm), "RUN") == json.dumps(results[1]).replace(str(cold), "RUN")
    server = int(re.search(r"mot warm: server (\d+) ", (warm / "warm.log").read_text()).group(1))
    assert _gone(server, 5), "the warm server outlived mot run"


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a, b)
