"""End to end with the real Axolotl and the real mergekit on CPU: a tiny two-round run, resume
after the run is killed during a branch and during a merge, and the merge YAML rerun by hand."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import recipe_data, write_recipe
from mot_plugin.steps import PROGRESS_FILE

pytestmark = pytest.mark.slow

TOKENIZED = "Unable to find prepared dataset"
CACHE_HIT = "Loading prepared dataset from disk"


def mot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mot_plugin.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900)


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(model_dir / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), f"{name} differs between {a} and {b}"


@pytest.fixture(scope="module")
def reference(toy, tmp_path_factory) -> Path:
    """An uninterrupted run: 2 teachers x 2 rounds x 3 steps, branch weights kept for the checks."""
    tmp = tmp_path_factory.mktemp("reference")
    recipe = write_recipe(tmp / "recipe.yaml", recipe_data(toy, tmp / "run", keep_branches=True))
    result = mot("run", str(recipe), cwd=tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp / "run"


def test_run_trains_merges_and_records(reference):
    for round_ in ("round-01", "round-02"):
        for teacher in ("brief", "wordy"):
            branch = reference / round_ / f"branch-{teacher}"
            done = json.loads((branch / "done.json").read_text())
            assert done["result"]["steps"] == 3
            assert done["result"]["tokens_trained"] > 0
            assert done["result"]["final_train_loss"] > 0
            assert (branch / "model" / "model.safetensors").is_file()
            assert json.loads((branch / "model" / PROGRESS_FILE).read_text()) == {"step": 3, "max_steps": 3}, \
                "the in-branch plugin's TrainerCallback records how far training got"
            assert not list((branch / "model").glob("checkpoint-*")), "only final weights are kept"
        merged = reference / round_ / "merged"
        assert (merged / "model.safetensors").is_file() and (merged / "tokenizer.json").is_file()
    # the merged student starts the next round
    axolotl_yaml = (reference / "round-02/branch-wordy/axolotl.yaml").read_text()
    assert f"base_model: {reference / 'round-01/merged'}" in axolotl_yaml
    # the merge is the plain average of the branches
    brief, split = (weights(reference / f"round-02/branch-{t}/model") for t in ("brief", "wordy"))
    for name, tensor in weights(reference / "round-02/merged").items():
        torch.testing.assert_close(tensor, (brief[name] + split[name]) / 2)


def test_each_teacher_is_tokenized_once_per_run(reference):
    for teacher in ("brief", "wordy"):
        first = (reference / f"round-01/branch-{teacher}/train.log").read_text()
        second = (reference / f"round-02/branch-{teacher}/train.log").read_text()
        assert TOKENIZED in first and CACHE_HIT in second and TOKENIZED not in second


def test_status_and_rerun_of_a_finished_run(reference):
    status = mot("status", str(reference), cwd=reference.parent)
    assert status.returncode == 0 and status.stdout.count(" done ") == 6
    again = mot("run", str(reference.parent / "recipe.yaml"), cwd=reference.parent)
    assert again.returncode == 0 and again.stdout.count("done earlier, skipped") == 6


def test_merge_diagnostics_recorded(reference):
    kinds = {"embedding", "attention", "mlp", "norm"}
    for round_ in ("round-01", "round-02"):
        diagnostics = json.loads((reference / round_ / "diagnostics.json").read_text())
        assert set(diagnostics) == {"relative_update", "relative_update_by_kind", "cosine", "mean_cosine",
                                    "sign_disagreement", "merged_relative_update", "warnings"}
        assert set(diagnostics["relative_update"]) == {"brief", "wordy"}
        assert all(u > 0 for u in diagnostics["relative_update"].values())
        assert all(set(k) == kinds for k in diagnostics["relative_update_by_kind"].values())
        assert [(c["a"], c["b"]) for c in diagnostics["cosine"]] == [("brief", "wordy")]
        assert -1 <= diagnostics["mean_cosine"] <= 1 and 0 <= diagnostics["sign_disagreement"] <= 1
        assert 0 < diagnostics["merged_relative_update"] <= max(diagnostics["relative_update"].values())
        assert all(isinstance(w, str) for w in diagnostics["warnings"])
        done = json.loads((reference / round_ / "merge.done.json").read_text())
        assert done["result"]["diagnostics"] == diagnostics
    status = mot("status", str(reference), cwd=reference.parent).stdout.splitlines()
    merges = [ln for ln in status if ln.startswith("round-0") and "/merge " in ln]
    assert len(merges) == 2 and all("update " in ln and ", cosine " in ln and "sign disagreement" in ln
                                    for ln in merges)


def test_merge_yaml_reruns_by_hand(reference, tmp_path):
    out = tmp_path / "by-hand"
    mergekit = Path(sys.executable).parent / "mergekit-yaml"
    result = subprocess.run([str(mergekit), str(reference / "round-01/merge.yaml"), str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert_same_weights(out, reference / "round-01/merged")


def _kill_when(tmp: Path, ready) -> None:
    """Start `mot run`, SIGKILL it once `ready()` is true, and check it left no trainer behind."""
    proc = subprocess.Popen([sys.executable, "-m", "mot_plugin.cli", "run", str(tmp / "recipe.yaml")], cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not ready():
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.time() < deadline
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)
    leftovers = subprocess.run(["pgrep", "-f", str(tmp / "run")], capture_output=True, text=True).stdout
    assert leftovers.strip() == "", "a step's process outlived the killed run"


def _mtimes(run: Path) -> dict[str, float]:
    return {str(p.relative_to(run)): p.stat().st_mtime for p in run.glob("round-*/**/done.json")} | {
        str(p.relative_to(run)): p.stat().st_mtime for p in run.glob("round-*/merge.done.json")}


@pytest.mark.parametrize("moment", ["branch", "merge"])
def test_resume_after_kill(toy, tmp_path, reference, moment):
    run = tmp_path / "run"
    write_recipe(tmp_path / "recipe.yaml", recipe_data(toy, run))
    if moment == "branch":  # round 1's first branch is done, the second is training
        def ready():
            log = run / "round-01/branch-wordy/train.log"
            return log.exists() and "Starting trainer" in log.read_text(errors="ignore")
    else:  # both round-1 branches are done, the merge is running
        def ready():
            return (run / "round-01/merge.log").exists()
    _kill_when(tmp_path, ready)
    assert not (run / f"round-01/{'branch-wordy/done.json' if moment == 'branch' else 'merge.done.json'}").exists()
    finished = _mtimes(run)
    assert finished, "some work had finished before the kill"

    status = mot("status", str(run), cwd=tmp_path)
    assert status.returncode == 0 and "running" not in status.stdout

    result = mot("run", str(tmp_path / "recipe.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("done earlier, skipped") == len(finished)
    after = _mtimes(run)
    assert all(after[k] == v for k, v in finished.items()), "finished work was redone"
    assert_same_weights(run / "round-02/merged", reference / "round-02/merged")


def test_failing_branch_stops_with_one_line_naming_its_log(toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", teachers=("wordy", "brief"), rounds=1, steps=1)
    data["mot"]["teachers"][0]["overrides"] = {"optimizer": "no_such_optimizer"}
    result = mot("run", str(write_recipe(tmp_path / "recipe.yaml", data)), cwd=tmp_path)
    assert result.returncode == 1
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("mot: error:")]
    assert len(errors) == 1 and "round-01/branch-wordy failed" in errors[0]
    assert str(tmp_path / "run/round-01/branch-wordy/train.log") in errors[0]
    assert "no_such_optimizer" in (tmp_path / "run/round-01/branch-wordy/train.log").read_text()
    assert not (tmp_path / "run/round-01/branch-brief").joinpath("model").exists()


@pytest.fixture(scope="module")
def with_baselines(toy, reference) -> Path:
    """The reference run's recipe plus evaluation and all baselines, run in the same directory:
    the finished MoT steps are kept, only evaluations and baselines run."""
    tmp = reference.parent
    data = recipe_data(toy, reference, baselines=["single", "union", "oneshot"],
                       eval={"data": str(toy["eval"]), "limit": 4, "max_new_tokens": 24, "batch_size": 4})
    recipe = write_recipe(tmp / "with-baselines.yaml", data)
    result = mot("run", str(recipe), cwd=tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("done earlier, skipped") == 6, "the MoT steps were not run again"
    assert f"Report: {reference / 'report.md'}" in result.stdout
    return reference


def test_evaluations_and_baselines_recorded(with_baselines):
    metrics = json.loads((with_baselines / "metrics.json").read_text())
    assert [r["round"] for r in metrics["mot"]] == [0, 1, 2]
    for row in [*metrics["mot"], *metrics["baselines"].values()]:
        assert 0.0 <= row["accuracy"] <= 1.0
        assert 0 <= row["unextracted"] <= 4
    assert {name: row["branch_steps"] for name, row in metrics["baselines"].items()} == {
        "single-brief": 6, "single-wordy": 6, "union": 6, "oneshot": 12}
    samples = (with_baselines / "eval/round-02/out/samples.jsonl").read_text().splitlines()
    assert len(samples) == 4 and all("response" in json.loads(line) for line in samples)


def test_every_evaluation_is_scored_per_slice(with_baselines, toy):
    """The toy's eval rows are tagged `skill` (a carry) or `kept`: each evaluation's slices are its own
    samples' verdicts counted per tag, with intervals, in metrics.json and the report."""
    from collections import Counter

    from mot_plugin.grading import load_eval_file
    from mot_plugin.stats import wilson_interval

    counts = Counter(tag for row in load_eval_file(toy["eval"])[:4] for tag in row["tags"])  # the run's limit: 4

    metrics = json.loads((with_baselines / "metrics.json").read_text())
    evaluated = {f"round-{r['round']:02d}": r for r in metrics["mot"]} | metrics["baselines"]
    for name, row in evaluated.items():
        samples = [json.loads(line) for line in
                   (with_baselines / "eval" / name / "out/samples.jsonl").read_text().splitlines()]
        assert {tag for sample in samples for tag in sample["tags"]} == {"skill", "kept"}
        for tag, entry in row["slices"].items():
            marks = [sample["correct"] for sample in samples if tag in sample["tags"]]
            assert (entry["accuracy"], entry["problems"]) == (sum(marks) / len(marks), len(marks)), (name, tag)
            assert entry["ci"] == [round(v, 4) for v in wilson_interval(sum(marks), len(marks))]
        assert sum(e["accuracy"] * e["problems"] for e in row["slices"].values()) == pytest.approx(4 * row["accuracy"])
    assert {tag: p["problems"] for tag, p in metrics["paired"][0]["slices"].items()} == counts
    report = (with_baselines / "report.md").read_text()
    header = " | ".join(f"{tag} ({n} problem{'' if n == 1 else 's'})" for tag, n in sorted(counts.items()))
    assert f"| model | all | {header} |" in report
    assert "| baseline oneshot |" in report.split("## Accuracy by slice")[1]


def test_report_plot_and_model_card(with_baselines):
    import matplotlib.image

    report = (with_baselines / "report.md").read_text()
    for name in ("| 0 |", "| 2 |", "single-brief", "union", "oneshot", "final round (2)", "highest round"):
        assert name in report
    pixels = matplotlib.image.imread(with_baselines / "accuracy.png")
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300 and pixels.std() > 0.05, "a real, non-empty plot"
    card = (with_baselines / "round-02/merged/README.md").read_text()
    assert "Merge-of-Thought" in card and "## Recipe" in card and "| 2 |" in card


def test_moved_run_is_done_and_report_changes_nothing_outside_it(with_baselines, tmp_path):
    copy = tmp_path / "moved-run"
    shutil.copytree(with_baselines, copy)
    files = lambda root: {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}
    before = files(with_baselines.parent)
    status = mot("status", str(copy), cwd=tmp_path)
    steps = [line.split() for line in status.stdout.splitlines() if not line.startswith(" ")]
    assert status.returncode == 0 and len(steps) == 17 and all(s[1] == "done" for s in steps), status.stdout
    assert mot("report", str(copy), cwd=tmp_path).returncode == 0
    assert files(with_baselines.parent) == before
    assert str(copy) not in (copy / "round-02/merged/README.md").read_text(), "no path of this machine's run directory"


def test_mot_eval_command(with_baselines, toy, tmp_path):
    out = tmp_path / "eval"
    result = mot("eval", str(with_baselines / "round-02/merged"), "--data", str(toy["eval"]), "--limit", "2",
                 "--max-new-tokens", "16", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout)
    assert metrics["n_problems"] == 2 and 0.0 <= metrics["accuracy"] <= 1.0
    assert sum(s["n_problems"] for s in metrics["slices"].values()) == 2, "each toy problem has one tag"
    assert (out / "metrics.json").is_file() and len((out / "samples.jsonl").read_text().splitlines()) == 2


def _walkthrough() -> list[str]:
    """The command lines of docs/sharing.md's walk-through, comments dropped."""
    text = (Path(__file__).parents[1] / "docs/sharing.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S) if "mot init work --from me/toy-mot" in b)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_sharing_walkthrough_reproduces_a_run(with_baselines, tmp_path):
    """docs/sharing.md's walk-through, line by line, on the finished run (`runs/toy` there): `mot push`
    commits into a local stand-in of the hub's file API (the hub is never reached), every other line runs
    as written. The reproduction, trained and merged again, answers every problem as the original did."""
    from hub_server import HubServer
    from mot_plugin.commands.common import run_dir_plan as _run_dir_plan
    from mot_plugin.push import uploads

    names = {"runs/toy": str(with_baselines), "../runs/toy": str(with_baselines)}
    hub = HubServer(tmp_path / "hub")
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf-home")}
    cwd, outputs = tmp_path, []
    try:
        for line in _walkthrough():
            args = [names.get(arg, arg) for arg in shlex.split(line)]
            if args[0] == "cd":
                cwd = cwd / args[1]
            elif args[1] == "push":  # what `mot push` commits, into the stand-in's folder
                for commit in uploads(_run_dir_plan(args[2]), revisions="--revisions" in args):
                    for name, content in commit.files.items():
                        target = tmp_path / "hub" / args[3] / commit.revision / name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(content if isinstance(content, bytes) else content.read_bytes())
            else:
                result = subprocess.run([sys.executable, "-m", "mot_plugin.cli", *args[1:]], cwd=cwd, env=env,
                                        capture_output=True, text=True, timeout=900)
                assert result.returncode == 0, f"{line}: {result.stdout + result.stderr}"
                outputs.append(result.stdout)
    finally:
        hub.close()
    init, plan, run, compare = outputs
    inputs = ["base_model", "mot.teachers.0.datasets.0.path", "mot.teachers.1.datasets.0.path", "mot.eval.data"]
    for output in (init, plan, run):
        assert all(re.search(rf"^  same data +{re.escape(key)} ", output, flags=re.M) for key in inputs), output
    assert f"Report: {tmp_path / 'work/runs/toy-mot/report.md'}" in run
    evaluations = [line for line in compare.splitlines() if line.startswith("| ") and " problems) |" in line]
    assert len(evaluations) == 7 * 3, compare  # the student, 2 rounds, 4 baselines; overall, kept and skill
    assert all("| +0.0 | b=0, c=0, p=1 (" in line for line in evaluations), compare
    assert "Identical: all 7 evaluations have the same accuracy in both runs (every slice too), and in the 7" in compare
    assert "| mot.run_dir |" not in compare and "different data" not in compare


def test_axolotl_mot_reaches_the_same_commands(reference):
    axolotl = Path(sys.executable).parent / "axolotl"
    result = subprocess.run([str(axolotl), "mot", "status", str(reference)], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "AXOLOTL_DO_NOT_TRACK": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count(" done ") >= 6


def test_local_parallel_branches(toy, tmp_path):
    """Two real branches at once on CPU, each teacher's data tokenized first into its own directory."""
    data = recipe_data(toy, tmp_path / "run", rounds=1, launch={"parallel": 2})
    result = mot("run", str(write_recipe(tmp_path / "recipe.yaml", data)), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()

    def at(text: str) -> int:
        return next(i for i, line in enumerate(lines) if text in line)

    both_running = max(at("round-01/branch-brief: running"), at("round-01/branch-wordy: running"))
    assert both_running < min(at("round-01/branch-brief: done"), at("round-01/branch-wordy: done"))
    run = tmp_path / "run"
    for teacher in ("brief", "wordy"):
        prepared = yaml.safe_load((run / f"round-01/branch-{teacher}/axolotl.yaml").read_text())[
            "dataset_prepared_path"]
        assert TOKENIZED in Path(f"{prepared}.log").read_text(), "the prepare step tokenized the data"
        log = (run / f"round-01/branch-{teacher}/train.log").read_text()
        assert CACHE_HIT in log and TOKENIZED not in log, "a branch tokenized again"
        where = json.loads((run / f"round-01/branch-{teacher}/where.json").read_text())
        assert where["launcher"] == "local" and where["slot"] in (0, 1)
    assert (run / "round-01/merged/model.safetensors").is_file()


def test_seeds_with_branch_evaluations(toy, tmp_path):
    """Two seeds from one command, every branch evaluated: 2 teachers x 1 round x 2 steps each."""
    data = recipe_data(toy, tmp_path / "run", rounds=1, steps=2, keep_branches=True,
                       eval={"data": str(toy["eval"]), "limit": 4, "max_new_tokens": 24, "batch_size": 4,
                             "branches": True})
    teachers = [t["name"] for t in data["mot"]["teachers"]]
    result = mot("run", str(write_recipe(tmp_path / "recipe.yaml", data)), "--seed", "0", "--seed", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for seed in (0, 1):
        run = tmp_path / f"run/seed-{seed}"
        for teacher in teachers:
            evaluation = json.loads((run / f"eval/round-01-branch-{teacher}/done.json").read_text())["result"]
            assert evaluation["n_problems"] == 4
            branch = json.loads((run / f"round-01/branch-{teacher}/model/mot_result.json").read_text())
            assert [step for step, _ in branch["loss_curve"]] == [1, 2]
            assert branch["loss_curve"][-1][1] == branch["final_train_loss"]
        assert f"seed: {seed}" in (run / f"round-01/branch-{teachers[0]}/axolotl.yaml").read_text()
    report = (tmp_path / "run/report.md").read_text()
    assert "2 runs (seed-0, seed-1)" in report and "## Merge gain" in report
    assert f"| seed-0 | 1 | {teachers[0]} | 2 |" in report and f"| seed-1 | 1 | {teachers[1]} | 2 |" in report
    assert (tmp_path / "run/accuracy.png").stat().st_size > 1000


def test_resume_after_several_random_kills(toy, tmp_path, reference):
    """Three SIGKILLs of the whole process group at random moments of one run, then `mot run` to the
    end: the final student is bitwise the uninterrupted run's (the seed of the moments is in the message).
    A moment is "after N finished steps, plus a random delay under 1.5 s", with N drawn below the number
    of this run's planned steps less one, so the first kill lands before the run can finish on any machine."""
    import random

    def finished(run_dir: Path) -> int:
        return sum(1 for _ in run_dir.rglob("*done.json")) if run_dir.exists() else 0

    from mot_plugin.planner import plan_run
    from mot_plugin.plugins import plugin_manager
    from mot_plugin.recipe import parse_recipe

    run = tmp_path / "run"
    data = recipe_data(toy, run)
    parsed = parse_recipe(data)
    steps = len(plan_run(parsed, plugin_manager(parsed.mot.plugins).hook).steps)  # this run's, not the shared reference's
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    moments = [(after, round(rng.uniform(0, 1.5), 2)) for after in sorted(rng.sample(range(steps - 1), 3))]
    recipe = write_recipe(tmp_path / "recipe.yaml", data)
    killed = []
    for after, delay in moments:
        proc = subprocess.Popen([sys.executable, "-m", "mot_plugin.cli", "run", str(recipe)], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        while proc.poll() is None and finished(run) < after:
            time.sleep(0.05)
        time.sleep(delay)
        if proc.poll() is not None:
            break  # finished before this moment
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed.append((after, delay))
    assert killed, f"the run was never interrupted (seed {seed}, moments {moments})"
    result = mot("run", str(recipe), cwd=tmp_path)
    assert result.returncode == 0, f"seed {seed}, kills (after N steps, delay s) {killed}: {result.stdout + result.stderr}"
    assert_same_weights(run / "round-02/merged", reference / "round-02/merged")
