"""The warm executor against the cold one: the same recipe run by `mot run` both ways, in one command.

Runs recipes/toy.yaml (on toy data generated here; flags make it smaller) once with
`mot.launch.executor: warm` and once with `cold`, each in its own run directory, and prints per kind
of step (prepare, branch, merge, eval): how many, their total wall, their fixed cost per step (wall
minus compute) and the warm/cold ratios, then both runs' total walls and their ratio. It checks that
both runs did the same steps and that every round's merged student is bitwise equal.

Compute, per kind: a branch's `train_seconds` (the trainer's loop, as the in-branch plugin records
it); an evaluation's own `seconds` (model load, generation and scoring, as `mot_plugin.evaluate`
records it); a merge's I/O and arithmetic, measured here in one warm process as the time to read its
K branch checkpoints, average them and write the result (`--merge-compute`); data preparation: none.
So the fixed cost is what a step pays for starting Python, importing and setting up.

    .venv/bin/python benchmarks/bench_warm.py [--work DIR] [--rounds N] [--steps N] [--teachers N]
        [--eval-limit N] [--no-baselines] [--pretrain-steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file

from bench_loop import timed  # this folder is on sys.path when a script in it runs

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("prepare", "branch", "merge", "eval")


def make_recipe(work: Path, executor: str, args: argparse.Namespace) -> Path:
    data = yaml.safe_load((ROOT / "recipes/toy.yaml").read_text())
    mot = data["mot"]
    data["base_model"] = str(work / "toy/student")
    mot["teachers"] = mot["teachers"][: args.teachers or None]
    for teacher in mot["teachers"]:
        for entry in teacher["datasets"]:
            entry["path"] = str(work / entry["path"])
    mot["eval"]["data"] = str(work / mot["eval"]["data"])
    if args.eval_limit:
        mot["eval"]["limit"] = args.eval_limit
    if args.no_baselines:
        mot["baselines"] = []
    mot["rounds"] = args.rounds or mot["rounds"]
    mot["steps_per_round"] = args.steps or mot["steps_per_round"]
    mot["run_dir"] = str(work / executor)
    mot["keep_branches"] = True  # the merge's compute is measured on its inputs afterwards
    mot.setdefault("launch", {})["executor"] = executor
    path = work / f"{executor}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def kind_of(marker: Path, run_dir: Path) -> str:
    rel = marker.relative_to(run_dir).as_posix()
    if rel.startswith("eval/"):
        return "eval"
    if rel.endswith("merge.done.json"):
        return "merge"
    return "prepare" if rel.startswith("prepared/") else "branch"


def merge_compute(run_dir: Path, rel: str) -> float:
    """Read the merge's inputs, average them, write the result: the merge's unavoidable work."""
    config = yaml.safe_load((run_dir / rel).with_name("merge.yaml").read_text())
    started = time.perf_counter()
    models = [load_file(Path(m["model"]) / "model.safetensors") for m in config["models"]]
    merged = {k: sum(m[k] for m in models) / len(models) for k in models[0]}
    with tempfile.TemporaryDirectory(dir=run_dir) as scratch:
        save_file(merged, str(Path(scratch) / "model.safetensors"))
    return time.perf_counter() - started


def steps_of(run_dir: Path) -> dict[str, dict]:
    """Every finished step: its kind, wall and compute."""
    steps = {}
    for marker in sorted(run_dir.rglob("*done.json")):
        rel = marker.relative_to(run_dir).as_posix()
        done = json.loads(marker.read_text())
        kind = kind_of(marker, run_dir)
        result = done["result"]
        compute = {"branch": lambda: result["train_seconds"], "eval": lambda: result["seconds"],
                   "merge": lambda: merge_compute(run_dir, rel), "prepare": lambda: 0.0}[kind]()
        steps[rel] = {"kind": kind, "wall": done["seconds"], "compute": compute, "start": marker.stat().st_mtime
                      - done["seconds"]}
    return steps


def final_students(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("round-*/merged/model.safetensors"))


def run(recipe: Path, env: dict) -> float:
    return timed([sys.executable, "-m", "mot_plugin.cli", "run", str(recipe)], env=env, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="scratch directory (default: a new temporary one)")
    parser.add_argument("--rounds", type=int, help="override the recipe's rounds")
    parser.add_argument("--steps", type=int, help="override the recipe's steps_per_round")
    parser.add_argument("--teachers", type=int, help="use only the first N teachers")
    parser.add_argument("--eval-limit", type=int, help="evaluate on the first N held-out problems only")
    parser.add_argument("--no-baselines", action="store_true", help="drop the recipe's baselines")
    parser.add_argument("--pretrain-steps", type=int, help="the toy student's pretraining (default: mot toy's)")
    args = parser.parse_args()
    work = (args.work or Path(tempfile.mkdtemp(prefix="mot-bench-warm-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "AXOLOTL_DO_NOT_TRACK": "1"}
    if not (work / "toy/student").is_dir():
        from mot_plugin.toy import make_toy

        make_toy(work / "toy", **({} if args.pretrain_steps is None else {"pretrain_steps": args.pretrain_steps}))

    walls, steps = {}, {}
    for executor in ("warm", "cold"):
        recipe = make_recipe(work, executor, args)
        walls[executor] = run(recipe, env)
        steps[executor] = steps_of(work / executor)

    assert steps["warm"].keys() == steps["cold"].keys(), "the two runs did different steps"
    finals = {e: final_students(work / e) for e in steps}
    assert [p.relative_to(work / "warm") for p in finals["warm"]] == \
        [p.relative_to(work / "cold") for p in finals["cold"]], "different merged students"
    for a, b in zip(finals["warm"], finals["cold"]):
        wa, wb = load_file(a), load_file(b)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), f"{a} differs from {b}"

    first = min(steps["warm"], key=lambda s: steps["warm"][s]["start"])
    print(f"recipe: {work / 'warm.yaml'} ({len(steps['warm'])} steps each; work dir {work})")
    print(f"{'kind':8} {'n':>3} | {'wall warm':>9} {'cold':>8} {'ratio':>6} | {'fixed/step warm':>15} "
          f"{'(after 1st)':>11} {'cold':>6} {'ratio':>6}")
    for kind in KINDS:
        ids = [s for s in steps["cold"] if steps["cold"][s]["kind"] == kind]
        if not ids:
            continue
        wall = {e: sum(steps[e][s]["wall"] for s in ids) for e in steps}
        fixed = {e: [steps[e][s]["wall"] - steps[e][s]["compute"] for s in ids] for e in steps}
        later = [steps["warm"][s]["wall"] - steps["warm"][s]["compute"] for s in ids if s != first] or fixed["warm"]
        mean = {e: statistics.mean(fixed[e]) for e in fixed}
        print(f"{kind:8} {len(ids):>3} | {wall['warm']:8.1f}s {wall['cold']:7.1f}s {wall['warm'] / wall['cold']:6.2f} | "
              f"{mean['warm']:14.1f}s {statistics.mean(later):10.1f}s {mean['cold']:5.1f}s "
              f"{mean['warm'] / mean['cold']:6.2f}")
    print(f"first warm step (pays for the server's imports): {first.removesuffix('done.json').rstrip('/.')}, "
          f"{steps['warm'][first]['wall'] - steps['warm'][first]['compute']:.1f}s fixed")
    print(f"mot run wall: warm {walls['warm']:.1f}s, cold {walls['cold']:.1f}s, ratio warm/cold "
          f"{walls['warm'] / walls['cold']:.3f}")
    print(f"final students: {len(finals['warm'])} merged rounds, bitwise equal warm and cold")


if __name__ == "__main__":
    main()
