"""End to end, real Axolotl and real mergekit on CPU: two rounds, three merge candidates chosen on a
validation split. The choice is the best on validation, the test file is opened by no evaluation
before the last choice (an audit hook in every process of the run records each open of it), and the
kept candidates' merge YAMLs rerun by hand with `mergekit-yaml` give the weights that were evaluated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import recipe_data, write_recipe
from test_e2e import assert_same_weights

pytestmark = pytest.mark.slow

AUDIT = '''"""Loaded by every Python process of the run (PYTHONPATH): records each open of one file."""
import json, os, sys, time

_LOG, _WATCHED = os.environ.get("MOT_AUDIT_LOG"), os.environ.get("MOT_AUDIT_FILE")


def _hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        if os.path.abspath(os.fsdecode(args[0])) == _WATCHED:
            with open(_LOG, "a") as log:
                log.write(json.dumps({"time": time.time(), "pid": os.getpid(), "argv": sys.argv}) + "\\n")


if _LOG and _WATCHED:
    sys.addaudithook(_hook)
'''
CANDIDATES = [{"name": "mean", "method": "linear"},
              {"name": "ties", "method": "ties", "parameters": {"density": 0.5}},
              {"name": "byacc", "method": "linear", "weights": "validation"}]


@pytest.fixture(scope="module")
def run(toy, validation, tmp_path_factory) -> tuple[Path, int, list[dict]]:
    """The run, the pid of its `mot run` and every open of the test file, in order."""
    tmp = tmp_path_factory.mktemp("candidates")
    (tmp / "audit").mkdir()
    (tmp / "audit/sitecustomize.py").write_text(AUDIT)
    data = recipe_data(toy, tmp / "run", rounds=2, steps=2, keep_branches=True,  # mergekit-yaml reads them again
                       merge={"candidates": CANDIDATES, "keep_candidates": True},
                       eval={"data": str(toy["eval"]), "validation": str(validation), "limit": 4,
                             "max_new_tokens": 24, "batch_size": 4})
    recipe = write_recipe(tmp / "recipe.yaml", data)
    env = {**os.environ, "MOT_AUDIT_LOG": str(tmp / "audit.jsonl"), "MOT_AUDIT_FILE": str(toy["eval"]),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp / "audit"), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "mot_plugin.cli", "run", str(recipe)], cwd=tmp, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = proc.communicate(timeout=1800)
    assert proc.returncode == 0, output
    opens = [json.loads(line) for line in (tmp / "audit.jsonl").read_text().splitlines()]
    return tmp / "run", proc.pid, opens


def _accuracy(marker: Path) -> float:
    return json.loads(marker.read_text())["result"]["accuracy"]


def test_the_chosen_candidate_is_the_best_on_validation(run):
    run_dir, _, _ = run
    for r in (1, 2):
        scores = {}
        for name in ("mean", "ties", "byacc"):
            evaluation = run_dir / f"eval/validation/round-0{r}-candidate-{name}"
            config = yaml.safe_load((evaluation / "eval.yaml").read_text())
            assert config["model"] == str(run_dir / f"round-0{r}/candidate-{name}/merged")
            samples = [json.loads(line) for line in (evaluation / "out/samples.jsonl").read_text().splitlines()]
            assert len(samples) == 4 and {s["prompt"] for s in samples} <= set(
                json.loads(line)["prompt"] for line in Path(config["data"]).read_text().splitlines())
            scores[name] = _accuracy(evaluation / "done.json")
            assert scores[name] == sum(s["correct"] for s in samples) / len(samples)
        choice = json.loads((run_dir / f"round-0{r}/choose.done.json").read_text())["result"]
        best = max(scores.values())
        assert choice["validation"] == scores
        assert choice["chosen"] == next(name for name, score in scores.items() if score == best)
        chosen = run_dir / f"round-0{r}/candidate-{choice['chosen']}/merged/model.safetensors"
        assert os.path.samefile(run_dir / f"round-0{r}/merged/model.safetensors", chosen)
    # round 2's branches started from round 1's choice
    branch = yaml.safe_load((run_dir / "round-02/branch-brief/axolotl.yaml").read_text())
    assert branch["base_model"] == str(run_dir / "round-01/merged")


def test_no_evaluation_opened_the_test_file_before_the_last_choice(run, toy):
    run_dir, pid, opens = run
    planned = (run_dir / "recipe.yaml").stat().st_mtime  # written once planning (which checks the files) is done
    last_choice = (run_dir / "round-02/choose.done.json").stat().st_mtime
    evaluations = [o for o in opens if o["pid"] != pid]
    assert all(o["time"] < planned for o in opens if o["pid"] == pid), "mot run read the test file after planning"
    assert len({o["pid"] for o in evaluations}) == 7, "round 0 and six candidates are evaluated on the test set"
    assert all(o["time"] > last_choice for o in evaluations), "an evaluation read the test file before a choice"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [(c["round"], c["candidate"]) for c in metrics["candidates"]] == [
        (r, n) for r in (1, 2) for n in ("mean", "ties", "byacc")]
    assert all(c["test"]["accuracy"] is not None for c in metrics["candidates"])
    report = (run_dir / "report.md").read_text()
    assert report.count("| candidate | merge | validation [95% CI] | test [95% CI] |") == 2


def test_losers_merge_yamls_rerun_by_hand_give_the_evaluated_weights(run, tmp_path):
    run_dir, _, _ = run
    mergekit = Path(sys.executable).parent / "mergekit-yaml"
    for r in (1, 2):
        chosen = json.loads((run_dir / f"round-0{r}/choose.done.json").read_text())["result"]["chosen"]
        for name in {"mean", "ties", "byacc"} - {chosen}:
            candidate = run_dir / f"round-0{r}/candidate-{name}"
            out = tmp_path / f"round-0{r}-{name}"
            result = subprocess.run([str(mergekit), str(candidate / "merge.yaml"), str(out)], capture_output=True,
                                    text=True, timeout=600)
            assert result.returncode == 0, result.stderr[-2000:]
            evaluated = yaml.safe_load((run_dir / f"eval/validation/round-0{r}-candidate-{name}/eval.yaml").read_text())
            assert_same_weights(out, Path(evaluated["model"]))
    # the validation-weighted merge's YAML holds the weights it derived
    merged = json.loads((run_dir / "round-01/candidate-byacc/merge.done.json").read_text())["result"]
    config = yaml.safe_load((run_dir / "round-01/candidate-byacc/merge.yaml").read_text())
    assert [m["parameters"]["weight"] for m in config["models"]] == list(merged["weights"].values())
