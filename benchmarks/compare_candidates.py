"""Uniform mean against merge candidates chosen on validation: the real `mot run`, seeded, on the toy.

Two arms of recipes/toy.yaml (toy data made here by `mot toy`, unless --work holds it already), each
run with `mot run RECIPE --seed S ...` for every seed, one after another:
- `uniform`: every round merges with the paper's uniform mean (`merge: {method: linear}`);
- `candidates`: every round merges once per candidate in CANDIDATES and continues with the one most
  accurate on the validation split (`merge.candidates`).
Both arms evaluate on the same validation split and test set, run no baselines (--baselines keeps
the recipe's), and report the test accuracy of the last round's student (`mot.select: last`) and of
the round best on validation. Prints, per arm: every seed's test accuracy overall and per slice
(eval rows' `tags`) with its 95% Wilson interval, the pooled accuracy over seeds with its interval,
the round the validation rule picks, each round's chosen candidate, and the wall time of all steps;
then the candidates' extra wall time per seed. --out writes every row as JSON.

    .venv/bin/python benchmarks/compare_candidates.py --work runs/compare --seeds 0 1 2 --out compare.json
    .venv/bin/python benchmarks/compare_candidates.py --quick     # a tiny check that it runs (12 min on 2 busy cores)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from mot_plugin.stats import wilson_interval

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [
    {"name": "mean", "method": "linear"},                                          # the paper's
    {"name": "ta-half", "method": "task_arithmetic", "parameters": {"lambda": 0.5}},  # half the summed update
    {"name": "ties", "method": "ties", "parameters": {"density": 0.5}},
    {"name": "by-accuracy", "method": "linear", "weights": "validation"},
]
ARMS = {"uniform": {"method": "linear"}, "candidates": {"candidates": CANDIDATES}}
QUICK = {"pretrain_steps": 20, "rounds": 1, "steps": 2, "eval_limit": 8, "seeds": [0]}
"""--quick: a student pretrained 20 steps, one round of 2 steps, 8 problems, one seed."""


def toy_files(work: Path, pretrain_steps: int | None) -> tuple[Path, Path]:
    """The toy under `work/toy` (made if missing): its (validation, test) files."""
    toy = work / "toy"
    if not (toy / "student").is_dir():
        cmd = [sys.executable, "-m", "mot_plugin.cli", "toy", str(toy)]
        subprocess.run(cmd + ([] if pretrain_steps is None else ["--pretrain-steps", str(pretrain_steps)]), check=True)
    return toy / "validation.jsonl", toy / "eval.jsonl"


def make_recipe(work: Path, arm: str, args: argparse.Namespace, validation: Path, test: Path) -> Path:
    data = yaml.safe_load((ROOT / "recipes/toy.yaml").read_text())
    mot = data["mot"]
    data["base_model"] = str(work / "toy/student")
    for teacher in mot["teachers"]:
        for entry in teacher["datasets"]:
            entry["path"] = str(work / entry["path"])
    mot["eval"].update(data=str(test), validation=str(validation), branches=args.branches)
    if args.eval_limit:
        mot["eval"]["limit"] = args.eval_limit
    mot["baselines"] = mot["baselines"] if args.baselines else []
    mot["rounds"] = args.rounds or mot["rounds"]
    mot["steps_per_round"] = args.steps or mot["steps_per_round"]
    mot["merge"] = ARMS[arm]
    mot["select"] = "last"
    mot["run_dir"] = str(work / arm)
    path = work / f"{arm}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _interval(accuracy: float | None, n: int | None) -> list[float] | None:
    return [round(v, 4) for v in wilson_interval(round(accuracy * n), n)] if accuracy is not None and n else None


def seed_row(arm: str, run_dir: Path) -> dict:
    """One seed's numbers, from its metrics.json and step markers."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    last = metrics["mot"][-1]
    picked = next((s for s in metrics["selection"] if s["rule"] == "validation"), None)
    return {
        "arm": arm, "seed": metrics["seed"], "run_dir": str(run_dir),
        "test": {"accuracy": last["accuracy"], "n": last["n"], "ci": last["ci"],
                 "slices": {tag: {k: s.get(k) for k in ("accuracy", "n", "ci")}
                            for tag, s in (last.get("slices") or {}).items()}},
        "by_validation": {k: picked[k] for k in ("round", "accuracy", "ci")} if picked else None,
        "per_round": [{"round": r["round"], "test": r["accuracy"],
                       "validation": (r.get("validation") or {}).get("accuracy")} for r in metrics["mot"]],
        "chosen": {c["round"]: c["candidate"] for c in metrics["candidates"] if c["chosen"]},
        "wall_seconds": round(sum(json.loads(m.read_text())["seconds"] for m in run_dir.rglob("*done.json")), 1),
    }


def pooled(rows: list[dict], get) -> str:
    """Mean ± std over seeds, and the pooled accuracy over every seed's answers with its 95% interval."""
    found = [get(r) for r in rows if get(r) and get(r)["accuracy"] is not None]
    if not found:
        return "–"
    accuracies = [f["accuracy"] for f in found]
    n = sum(f["n"] for f in found)
    correct = sum(round(f["accuracy"] * f["n"]) for f in found)
    low, high = wilson_interval(correct, n)
    spread = f" ± {100 * statistics.stdev(accuracies):.1f}" if len(found) > 1 else ""
    return (f"{100 * statistics.mean(accuracies):.1f}%{spread} "
            f"(pooled {100 * correct / n:.1f}% [{100 * low:.1f}, {100 * high:.1f}])")


def _acc(entry: dict | None) -> str:
    if not entry or entry.get("accuracy") is None:
        return "–"
    ci = entry.get("ci")
    return f"{100 * entry['accuracy']:.1f}%" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="scratch directory (default: a new temporary one)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, help="override the recipe's rounds")
    parser.add_argument("--steps", type=int, help="override the recipe's steps_per_round")
    parser.add_argument("--eval-limit", type=int, help="evaluate on the first N problems of each split only")
    parser.add_argument("--pretrain-steps", type=int, help="the toy student's pretraining (default: mot toy's)")
    parser.add_argument("--branches", action="store_true", help="also evaluate every branch (eval.branches)")
    parser.add_argument("--baselines", action="store_true", help="keep the recipe's baselines")
    parser.add_argument("--quick", action="store_true", help=f"a tiny run that checks the script works: {QUICK}")
    parser.add_argument("--out", type=Path, help="write every row as JSON")
    args = parser.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    work = (args.work or Path(tempfile.mkdtemp(prefix="mot-compare-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "AXOLOTL_DO_NOT_TRACK": "1"}
    validation, test = toy_files(work, args.pretrain_steps)
    rows = []
    for arm in ARMS:
        recipe = make_recipe(work, arm, args, validation, test)
        seeds = [flag for seed in args.seeds for flag in ("--seed", str(seed))]
        subprocess.run([sys.executable, "-m", "mot_plugin.cli", "run", str(recipe), *seeds], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        rows += [seed_row(arm, work / arm / f"seed-{seed}") for seed in args.seeds]

    print(f"work dir: {work}; seeds {args.seeds}; test set {test} ({rows[0]['test']['n']} answers a run)")
    print("\n| arm | seed | test, last round [95% CI] | per slice | test, round best on validation "
          "| chosen per round | wall s |\n|---|---|---|---|---|---|---|")
    for row in rows:
        slices = ", ".join(f"{tag} {_acc(s)}" for tag, s in row["test"]["slices"].items()) or "–"
        picked = row["by_validation"]
        by_validation = f"round {picked['round']}: {_acc(picked)}" if picked else "–"
        chosen = ", ".join(f"{r}: {name}" for r, name in row["chosen"].items()) or "–"
        print(f"| {row['arm']} | {row['seed']} | {_acc(row['test'])} | {slices} | {by_validation} | {chosen} | "
              f"{row['wall_seconds']} |")
    print("\n| arm | test, last round: mean ± std (pooled [95% CI]) | per slice | test, round best on validation "
          "| wall s |\n|---|---|---|---|---|")
    tags = sorted({tag for row in rows for tag in row["test"]["slices"]})
    for arm in ARMS:
        mine = [r for r in rows if r["arm"] == arm]
        slices = "; ".join(f"{t} {pooled(mine, lambda r, t=t: r['test']['slices'].get(t))}" for t in tags) or "–"
        walls = [r["wall_seconds"] for r in mine]
        print(f"| {arm} | {pooled(mine, lambda r: r['test'])} | {slices} | "
              f"{pooled(mine, lambda r: r['by_validation'] and {**r['by_validation'], 'n': r['test']['n']})} | "
              f"{statistics.mean(walls):.0f} |")
    extra = [c["wall_seconds"] - u["wall_seconds"] for u, c in zip(rows[:len(args.seeds)], rows[len(args.seeds):])]
    print(f"\ncandidates' extra wall time per seed: {', '.join(f'{e:+.0f} s' for e in extra)} "
          f"(uniform: {', '.join(str(r['wall_seconds']) for r in rows[:len(args.seeds)])} s)")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
