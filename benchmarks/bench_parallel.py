"""One MoT round of four tiny branches, run one at a time and two at a time (`launch.parallel: 2`).

Runs both in this one command on freshly generated toy data (the built-in default's student and
teachers; the fourth teacher is a second copy of `wordy` under another name). Prints each run's
total wall time, the round's wall time (first branch start to merge done) and their ratios. With
`parallel: 2` each teacher's data is tokenized first in `prepare/<teacher>` steps; their time is in
the total, not in the round. Checks that both runs finished the same branches (each `--steps`
optimizer steps) and merge.

    .venv/bin/python benchmarks/bench_parallel.py [--work DIR] [--steps N] [--devices 0 1]

`--devices` gives the two-at-a-time run one `CUDA_VISIBLE_DEVICES` group per branch (`launch.local.devices`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEACHERS = {"brief": "brief", "wordy": "wordy", "tensfirst": "tensfirst", "wordy2": "wordy"}


def recipe_for(work: Path, parallel: int, steps: int, devices: list[str]) -> Path:
    data = yaml.safe_load((ROOT / "recipes/toy.yaml").read_text())
    data["base_model"] = str(work / "toy/student")
    template = data["mot"]["teachers"][0]["datasets"][0]
    data["mot"].update(
        run_dir=str(work / f"parallel-{parallel}"), rounds=1, steps_per_round=steps, baselines=[], eval=None,
        launch={"parallel": parallel, "local": {"devices": devices if parallel > 1 else []}},
        teachers=[{"name": name, "datasets": [{**template, "path": str(work / f"toy/data/{corpus}.jsonl")}]}
                  for name, corpus in TEACHERS.items()],
    )
    path = work / f"parallel-{parallel}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def timed_run(recipe: Path) -> float:
    started = time.time()
    subprocess.run([sys.executable, "-m", "mot_plugin.cli", "run", str(recipe)], check=True,
                   stdout=subprocess.DEVNULL)
    return time.time() - started


def round_work(run_dir: Path) -> dict[str, int | None]:
    """The round's finished steps (branches and the merge) and each branch's optimizer steps."""
    work = {}
    for marker in sorted(run_dir.glob("round-01/**/*done.json")):
        step = str(marker.parent.relative_to(run_dir)) if marker.name == "done.json" else "round-01/merge"
        work[step] = json.loads(marker.read_text())["result"].get("steps")
    return work


def round_seconds(run_dir: Path) -> float:
    """From the first branch's start (its `where.json`) to the merge's marker."""
    first = min(p.stat().st_mtime for p in run_dir.glob("round-01/branch-*/where.json"))
    return (run_dir / "round-01/merge.done.json").stat().st_mtime - first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--devices", nargs=2, default=[], metavar="GROUP")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="mot-bench-parallel-"))
    subprocess.run([sys.executable, "-m", "mot_plugin.cli", "toy", str(work / "toy")], check=True,
                   stdout=subprocess.DEVNULL)
    rows = {}
    for parallel in (1, 2):
        total = timed_run(recipe_for(work, parallel, args.steps, args.devices))
        rows[parallel] = (total, round_seconds(work / f"parallel-{parallel}"))
    work_done = {parallel: round_work(work / f"parallel-{parallel}") for parallel in rows}
    assert work_done[1] == work_done[2], f"not the same work: {work_done}"
    assert sorted(v for v in work_done[1].values() if v is not None) == [args.steps] * len(TEACHERS), work_done[1]
    devices = f", devices {args.devices}" if args.devices else ""
    print(f"one round, 4 branches x {args.steps} steps, toy student{devices}, {work}; both ran the same "
          f"{len(work_done[1])} steps")
    for parallel, (total, round_) in rows.items():
        print(f"  parallel {parallel}: total {total:6.1f} s, round {round_:6.1f} s")
    print(f"  ratio parallel 2 / parallel 1: total {rows[2][0] / rows[1][0]:.3f}, round {rows[2][1] / rows[1][1]:.3f}")


if __name__ == "__main__":
    main()
