"""No data loss, nothing outside the run directory, no hang, no lost marker (fast launcher plugin:
branches by tests/fake_launcher.py, merges by tests/example_plugins/mean_merge.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import FAST, recipe_data, write_recipe
from fake_launcher import CALLS
from mot_plugin import runner
from mot_plugin.atomic import OutsideRoot, remove_tree
from mot_plugin.cli import main
from mot_plugin.rundir import run_lock

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def mot(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def _fast(toy, tmp_path, **mot_keys) -> Path:
    data = recipe_data(toy, tmp_path / "run", **FAST, **mot_keys)
    return write_recipe(tmp_path / "r.yaml", data)


def _calls(tmp_path) -> list[str]:
    path = tmp_path / "run" / CALLS
    return path.read_text().splitlines() if path.exists() else []


def _outside(tmp_path) -> Path:
    outside = tmp_path / "outside"
    (outside / "model").mkdir(parents=True)
    (outside / "model" / "precious.txt").write_text("keep me")
    (outside / "precious.txt").write_text("keep me")
    return outside


def _intact(outside: Path) -> bool:
    return sorted(p.name for p in outside.rglob("*")) == ["model", "precious.txt", "precious.txt"]


# ---------------------------------------------------------------- nothing outside the run directory


def test_symlinked_step_directory_is_refused_before_anything_runs(toy, tmp_path):
    recipe = _fast(toy, tmp_path)
    assert mot("plan", recipe).exit_code == 0
    outside = _outside(tmp_path)
    branch = tmp_path / "run/round-01/branch-brief"
    for path in branch.iterdir():
        path.unlink()
    branch.rmdir()
    branch.symlink_to(outside, target_is_directory=True)
    for command in ("plan", "run"):
        result = mot(command, recipe)
        assert result.exit_code == 2, result.output
        assert "branch-brief: a symbolic link inside the run directory" in result.stderr
    assert _intact(outside) and _calls(tmp_path) == []


def test_symlinked_round_directory_and_file_are_refused(toy, tmp_path):
    recipe = _fast(toy, tmp_path)
    outside = _outside(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run/round-02").symlink_to(outside, target_is_directory=True)
    assert mot("plan", recipe).exit_code == 2
    (tmp_path / "run/round-02").unlink()
    (tmp_path / "run/recipe.yaml").symlink_to(outside / "precious.txt")
    result = mot("plan", recipe)
    assert result.exit_code == 2 and "recipe.yaml: a symbolic link" in result.stderr
    assert _intact(outside) and (outside / "precious.txt").read_text() == "keep me"


def test_report_never_writes_through_a_symlink(toy, tmp_path):
    recipe = _fast(toy, tmp_path)
    assert mot("run", recipe).exit_code == 0
    outside = _outside(tmp_path)
    merged = tmp_path / "run/round-01/merged"
    shutil.rmtree(merged)
    merged.symlink_to(outside, target_is_directory=True)
    result = mot("report", tmp_path / "run")
    assert result.exit_code == 2 and "merged: a symbolic link inside the run directory" in result.stderr
    assert _intact(outside)


def test_delete_never_follows_a_symlink_planted_during_a_run(tmp_path):
    outside = _outside(tmp_path)
    run = tmp_path / "run"
    (run / "round-01").mkdir(parents=True)
    (run / "round-01/branch-x").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutsideRoot, match="symbolic link"):
        remove_tree(run / "round-01/branch-x/model", run)
    with pytest.raises(OutsideRoot, match="not inside"):
        remove_tree(outside / "model", run)
    assert _intact(outside)


def test_temporary_files_are_created_exclusively(tmp_path):
    from mot_plugin.atomic import write_text

    outside = _outside(tmp_path)
    target = tmp_path / "run" / "recipe.yaml"
    target.parent.mkdir()
    for name in ("recipe.yaml.tmp", ".recipe.yaml.tmp"):  # the names a careless writer would use
        (target.parent / name).symlink_to(outside / "precious.txt")
    write_text(target, "new")
    assert target.read_text() == "new" and (outside / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in target.parent.iterdir()) == [".recipe.yaml.tmp", "recipe.yaml", "recipe.yaml.tmp"]


# ---------------------------------------------------------------- no hang, no lost marker


def test_plan_waits_for_no_run_and_refuses_while_one_holds_the_lock(toy, tmp_path):
    recipe = _fast(toy, tmp_path)
    assert mot("plan", recipe).exit_code == 0
    config = (tmp_path / "run/round-01/branch-brief/axolotl.yaml").read_text()
    with run_lock(tmp_path / "run"):
        data = json.loads(json.dumps(recipe_data(toy, tmp_path / "run", **FAST)))
        data["learning_rate"] = 1.0e-4
        write_recipe(recipe, data)
        result = mot("plan", recipe)
    assert result.exit_code == 2 and "in use by another mot run or plan" in result.stderr
    assert (tmp_path / "run/round-01/branch-brief/axolotl.yaml").read_text() == config


def test_failure_to_record_a_failure_still_reaches_the_scheduler(toy, tmp_path, monkeypatch):
    data = recipe_data(toy, tmp_path / "run", **FAST)
    data["mot"]["teachers"][1]["overrides"] = {"learning_rate": 0.0}  # the fake launcher fails this branch
    recipe = write_recipe(tmp_path / "r.yaml", data)
    real = runner.write_json

    def full_disk(path, payload):
        if path.name == "failed.json":
            raise OSError(28, "No space left on device")
        real(path, payload)

    monkeypatch.setattr(runner, "write_json", full_disk)
    monkeypatch.setattr("signal.signal", lambda *a: None)  # `mot run` sets a handler: main thread only
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("result", mot("run", recipe)), daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "mot run hung after a failure it could not record"
    assert outcome["result"].exit_code == 1 and "branch-wordy failed" in outcome["result"].stderr


def test_done_merge_whose_output_was_deleted_reruns_with_what_reads_it(toy, tmp_path):
    recipe = _fast(toy, tmp_path)
    assert mot("run", recipe).exit_code == 0
    shutil.rmtree(tmp_path / "run/round-01/merged")
    result = mot("run", recipe)
    assert result.exit_code == 0, result.output
    # round 1's branches were deleted after their merge: they train again, then every later step
    assert _calls(tmp_path)[4:] == ["round-01/branch-brief", "round-01/branch-wordy",
                                    "round-02/branch-brief", "round-02/branch-wordy"]
    assert (tmp_path / "run/round-01/merged/model.safetensors").is_file()


def test_changed_eval_file_and_student_rerun_what_read_them(toy, tmp_path):
    eval_file = tmp_path / "eval.jsonl"
    shutil.copy(toy["eval"], eval_file)
    student = tmp_path / "student"
    shutil.copytree(toy["student"], student)
    data = recipe_data(toy, tmp_path / "run", **FAST,
                       eval={"data": str(eval_file)})
    data["base_model"] = str(student)
    recipe = write_recipe(tmp_path / "r.yaml", data)
    assert mot("run", recipe).exit_code == 0
    first = len(_calls(tmp_path))
    with eval_file.open("a") as handle:  # same path, one more problem
        handle.write(eval_file.read_text().splitlines()[0] + "\n")
    assert mot("run", recipe).exit_code == 0
    assert sorted(_calls(tmp_path)[first:]) == ["eval/round-00", "eval/round-01", "eval/round-02"]
    second = len(_calls(tmp_path))
    (student / "config.json").write_text((student / "config.json").read_text() + "\n")
    assert mot("run", recipe).exit_code == 0
    assert len(_calls(tmp_path)) - second == first, "a changed student reruns everything"


def test_marker_records_the_config_file_it_ran_with(toy, tmp_path):
    assert mot("run", _fast(toy, tmp_path)).exit_code == 0
    branch = tmp_path / "run/round-01/branch-brief"
    marker = json.loads((branch / "done.json").read_text())
    assert marker["config_sha256"] == hashlib.sha256((branch / "axolotl.yaml").read_bytes()).hexdigest()


# ---------------------------------------------------------------- no data loss in mot data and mot toy


def test_convert_force_replaces_only_once_complete(tmp_path):
    good = tmp_path / "in.jsonl"
    good.write_text("".join(json.dumps({"prompt": f"p{i}", "response": "r"}) + "\n" for i in range(3)))
    out = tmp_path / "out.jsonl"
    out.write_text("mine\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + '{"prompt": "x"}\n')
    result = mot("data", "convert", bad, out, "--force")
    assert result.exit_code == 2 and "bad.jsonl:4" in result.stderr
    assert out.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "in.jsonl",
                                                                                        "out.jsonl"]
    assert mot("data", "convert", good, out, "--force").exit_code == 0
    assert len(out.read_text().splitlines()) == 3


def test_filter_refuses_its_inputs_as_outputs_even_with_force(tmp_path):
    corpus = tmp_path / "t"
    corpus.mkdir()
    row = {"messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}], "answer": "2"}
    for name in ("a", "b"):
        (corpus / f"{name}.jsonl").write_text((json.dumps(row) + "\n") * 200)
    before = {p.name: p.read_text() for p in corpus.iterdir()}
    result = mot("data", "filter", corpus, "--out", corpus, "--force")
    assert result.exit_code == 2 and "also an input" in result.stderr
    assert {p.name: p.read_text() for p in corpus.iterdir()} == before


def test_toy_force_replaces_only_once_complete(tmp_path, monkeypatch):
    from mot_plugin import toy

    out = tmp_path / "toy"
    out.mkdir()
    (out / "eval.jsonl").write_text("mine\n")
    monkeypatch.setattr(toy, "_make_toy", lambda *a: (_ for _ in ()).throw(RuntimeError("killed mid-way")))
    with pytest.raises(RuntimeError):
        toy.make_toy(out, pretrain_steps=0, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["eval.jsonl"] and (out / "eval.jsonl").read_text() == "mine\n"
    monkeypatch.undo()
    paths = toy.make_toy(out, n_train=4, n_val=3, n_eval=2, n_pretrain=4, pretrain_steps=0, force=True)
    assert len(paths["eval"].read_text().splitlines()) == 2 and sorted(p.name for p in out.iterdir()) == [
        "data", "eval.jsonl", "student", "validation.jsonl"]


def test_plan_shows_the_slurm_job_script(toy, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "squeue"):  # plan only checks that they exist; it submits nothing
        (bin_dir / name).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    data = recipe_data(toy, tmp_path / "run", launch={"launcher": "slurm",
                                                      "slurm": {"sbatch_args": ["--partition=gpu"]}})
    result = mot("plan", write_recipe(tmp_path / "r.yaml", data))
    assert result.exit_code == 0, result.output
    assert "job script of round-01/branch-brief" in result.output
    assert "    #SBATCH --partition=gpu" in result.output and "    set -euo pipefail" in result.output
