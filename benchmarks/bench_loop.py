"""mot run versus a plain shell loop of the same `axolotl train` and `mergekit-yaml` commands.

Runs the built-in default (recipes/toy.yaml, on freshly generated toy data, without its evaluations
and baselines, which a loop would not do) twice in this one command: once with `mot run`, once as a
bash loop over the very configs `mot plan` writes. Checks that both did the same branches and
merges, then prints both wall times, their ratio, how many times each teacher's data was tokenized
in each, and how far apart the two final students are.

    .venv/bin/python benchmarks/bench_loop.py [--work DIR] [--rounds N] [--steps N]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOKENIZED = "Unable to find prepared dataset"
CACHE_HIT = "Loading prepared dataset from disk"


def recipe_for(work: Path, run_dir: Path, rounds: int | None, steps: int | None) -> Path:
    data = yaml.safe_load((ROOT / "recipes/toy.yaml").read_text())
    data["base_model"] = str(work / "toy/student")
    for teacher in data["mot"]["teachers"]:
        for entry in teacher["datasets"]:
            entry["path"] = str(work / entry["path"])
    data["mot"]["run_dir"] = str(run_dir)
    data["mot"].pop("eval", None)  # the same work on both sides: rounds of branches and merges only
    data["mot"]["baselines"] = []
    data["mot"]["rounds"] = rounds or data["mot"]["rounds"]
    data["mot"]["steps_per_round"] = steps or data["mot"]["steps_per_round"]
    path = work / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def shell_loop(run_dir: Path) -> tuple[str, list[str]]:
    """The loop a person would write over the planned configs, and the steps it runs."""
    lines, steps = ["set -euo pipefail"], []
    for round_dir in sorted(run_dir.glob("round-*")):
        for config in sorted(round_dir.glob("branch-*/axolotl.yaml"), key=lambda p: p.stat().st_mtime):
            log = config.with_name("train.log")
            lines.append(f"{BIN}/axolotl train {shlex.quote(str(config))} > {shlex.quote(str(log))} 2>&1")
            steps.append(f"{round_dir.name}/{config.parent.name}")
        merge = round_dir / "merge.yaml"
        lines.append(f"{BIN}/mergekit-yaml {merge} {round_dir / 'merged'} > {round_dir / 'merge.log'} 2>&1")
        steps.append(f"{round_dir.name}/merge")
    return "\n".join(lines) + "\n", steps


def mot_steps(run_dir: Path) -> list[str]:
    """The steps `mot run` finished, by id."""
    ids = []
    for marker in run_dir.rglob("*done.json"):
        rel = marker.relative_to(run_dir)
        ids.append(f"{rel.parent}/merge" if marker.name == "merge.done.json" else str(rel.parent))
    return sorted(ids)


def tokenizations(run_dir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for log in sorted(run_dir.glob("round-*/branch-*/train.log")):
        teacher = log.parent.name.removeprefix("branch-")
        counts[teacher] = counts.get(teacher, 0) + log.read_text(errors="ignore").count(TOKENIZED)
    return counts


def executor(recipe: Path) -> str:
    return (yaml.safe_load(recipe.read_text())["mot"].get("launch") or {}).get("executor", "warm")


def timed(cmd: list[str], **kwargs) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, **kwargs)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="scratch directory (default: a new temporary one)")
    parser.add_argument("--rounds", type=int, help="override the recipe's rounds")
    parser.add_argument("--steps", type=int, help="override the recipe's steps_per_round")
    args = parser.parse_args()
    work = (args.work or Path(tempfile.mkdtemp(prefix="mot-bench-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "AXOLOTL_DO_NOT_TRACK": "1"}
    subprocess.run([str(BIN / "mot"), "toy", str(work / "toy")], check=True, env=env, stdout=subprocess.DEVNULL)

    mot_recipe = recipe_for(work, work / "mot", args.rounds, args.steps)
    mot_seconds = timed([str(BIN / "mot"), "run", str(mot_recipe)], env=env, stdout=subprocess.DEVNULL)

    loop_recipe = recipe_for(work, work / "loop", args.rounds, args.steps)
    subprocess.run([str(BIN / "mot"), "plan", str(loop_recipe)], check=True, env=env, stdout=subprocess.DEVNULL)
    script = work / "loop.sh"
    text, loop_steps = shell_loop(work / "loop")
    script.write_text(text)
    loop_seconds = timed(["bash", str(script)], env=env)
    assert mot_steps(work / "mot") == sorted(loop_steps), f"not the same work: {mot_steps(work / 'mot')} vs {loop_steps}"

    final = sorted((work / "mot").glob("round-*"))[-1].name
    a = load_file(work / "mot" / final / "merged/model.safetensors")
    b = load_file(work / "loop" / final / "merged/model.safetensors")
    diff = max((a[k] - b[k]).abs().max().item() for k in a)

    print(f"recipe: {mot_recipe} ({final}, work dir {work}); both ran the same {len(loop_steps)} steps")
    print(f"mot run ({executor(mot_recipe)}):   {mot_seconds:8.1f} s   tokenizations per teacher: {tokenizations(work / 'mot')}")
    print(f"plain shell loop: {loop_seconds:8.1f} s   tokenizations per teacher: {tokenizations(work / 'loop')}")
    print(f"ratio mot/loop:   {mot_seconds / loop_seconds:8.3f}")
    print(f"final students: max |difference| = {diff:.3g} ({'bitwise equal' if diff == 0 else 'not bitwise equal'})")


if __name__ == "__main__":
    main()
