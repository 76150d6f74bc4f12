"""`mot plan` of an unchanged recipe, without and with the cache of Axolotl's validation.

Writes the toy data (`mot toy`, a random-init student: planning does not care), then times `mot plan
recipes/toy.yaml` as a new process, as a user runs it: `--repeat` times with the cache files
(`RUN_DIR/axolotl-validated.json`, `RUN_DIR/mergekit-methods.json`) deleted before each run (every plan
imports and validates with Axolotl and mergekit, as before the caches), and `--repeat` times with them
in place (a second plan of an unchanged recipe). Prints each wall time, the medians and their ratio,
and checks that both kinds of plan print the same steps.

    .venv/bin/python benchmarks/bench_plan.py [--work DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MOT = [sys.executable, "-m", "mot_plugin.cli"]


def plan(work: Path) -> tuple[float, list[str]]:
    """Wall seconds of one `mot plan recipes/toy.yaml` in `work`, and the steps it printed."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "AXOLOTL_DO_NOT_TRACK": "1", "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run([*MOT, "plan", "recipes/toy.yaml"], cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"mot plan failed:\n{done.stdout}\n{done.stderr}")
    steps = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ") and " pending " in line]
    return seconds, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="Working directory (default: a new temporary one).")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-plan-"))
    (work / "recipes").mkdir(parents=True, exist_ok=True)
    (work / "recipes/toy.yaml").write_text((ROOT / "recipes/toy.yaml").read_text())
    if not (work / "toy/student").is_dir():
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([*MOT, "toy", "toy", "--pretrain-steps", "0"], cwd=work, env=env, check=True,
                       capture_output=True)
    caches = [work / "runs/toy/axolotl-validated.json", work / "runs/toy/mergekit-methods.json"]
    uncached, cached, printed = [], [], set()
    for _ in range(args.repeat):
        for cache in caches:
            cache.unlink(missing_ok=True)
        seconds, steps = plan(work)
        uncached.append(seconds)
        printed.add(tuple(steps))
    for _ in range(args.repeat):
        seconds, steps = plan(work)
        cached.append(seconds)
        printed.add(tuple(steps))
    assert len(printed) == 1 and next(iter(printed)), "every plan prints the same steps"
    before, after = statistics.median(uncached), statistics.median(cached)
    print(f"mot plan recipes/toy.yaml ({len(next(iter(printed)))} steps), {os.cpu_count()} CPU cores, in {work}")
    print(f"  no cache (Axolotl and mergekit imported): {', '.join(f'{s:.2f}' for s in uncached)} s; "
          f"median {before:.2f} s")
    print(f"  cached (unchanged recipe):                {', '.join(f'{s:.2f}' for s in cached)} s; median {after:.2f} s")
    print(f"  ratio uncached / cached: {before / after:.1f}x")


if __name__ == "__main__":
    main()
