"""Which settings should the built-in default use? A seeded sweep over MoT's regime on the toy world,
in-process, every choice made on the validation split.

Each cell runs the built-in default's miniature of MoT with the plain PyTorch loop of
mot_plugin.toytrain (the same tiny Qwen3, data, tokenizer, AdamW and warm-up + cosine schedule as
recipes/toy.yaml, batch 16, without Axolotl's start-up cost per step): up to R rounds of K = 3
branches x S steps from the current student and a uniform average; the student, every branch and
every merge are evaluated on the validation split (300 problems, what choices are made on) and on
the held-out test set (300 problems, only reported), overall and per slice (`skill`: needs a carry,
`kept`: does not).

Axes: model width (`hidden`, two sizes; each seed's student is pretrained by `mot toy`'s recipe),
learning rate, steps per round, rounds (every round up to --rounds is recorded). At least 3 seeds
per cell (the seed changes the student's init and pretraining order and every branch's data order;
the problems are fixed). The choice: the (cell, round) with the best mean validation accuracy of
MoT's merged student.

Then `--baselines CELL --rounds R` runs the baselines of that choice, at the same lr: each teacher
alone (STD) and all teachers' data together (MTD), at equal lineage budget (R x S steps, as
`mot.baselines` does) and at equal total compute (K x R x S steps: MoT trains K branches a round),
and the one-shot merge of the equal-lineage single-teacher models.

    python benchmarks/sweep_regime.py --cells 128,1e-4,20 128,3e-4,20 --out sweep-128.json
    python benchmarks/sweep_regime.py --baselines 128,3e-4,20 --rounds 3 --out baselines.json
    python benchmarks/sweep_regime.py --table sweep-128.json sweep-64.json   # the tables again, from rows
(benchmarks/results/regime-*.json: the rows behind docs/results.md, measured 2026-12-04.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from mot_plugin import toy, toytrain
from mot_plugin.stats import wilson_interval

BATCH = 16
"""Sequences per step, as recipes/toy.yaml's micro_batch_size."""
MAX_NEW_TOKENS = 80
"""As recipes/toy.yaml's eval.max_new_tokens (the wordy teacher's answers are about 60 tokens)."""
SLICES = ("skill", "kept")


class Setup:
    """The toy's data (`mot toy`'s, data seed 0), its tokenizer, and pretrained students per (width, seed)."""

    def __init__(self, cache: Path | None, pretrain_steps: int = toy.PRETRAIN_STEPS):
        train, validation, test, generic = toy.split_problems(0, 400, 300, 300, 2000)
        self.corpora = {name: [toy.chat(p, solve(a, b)) for p, a, b in train] for name, solve in toy.SOLVERS.items()}
        self.pretraining = {}
        self.generic = generic
        self.sets = {"val": toy.eval_rows(validation), "test": toy.eval_rows(test)}
        self.tok = toy.tokenizer(toy.corpus_texts(train, validation, test, generic, toy.pretraining_rows(generic, 0)))
        self.cache, self.pretrain_steps = cache, pretrain_steps

    def student(self, hidden: int, seed: int) -> dict:
        """The round-0 student's weights, pretrained as `mot toy` does (cached on disk with --cache)."""
        path = self.cache / f"student-{hidden}-{seed}-{self.pretrain_steps}.pt" if self.cache else None
        if path and path.exists():
            return torch.load(path)
        model = toy.new_student(self.tok, seed, hidden)
        toytrain.pretrain(model, self.tok, toy.pretraining_rows(self.generic, seed), steps=self.pretrain_steps, seed=seed)
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(weights, path)
        return weights


def _marks(model, setup: Setup, weights: dict) -> dict[str, list[bool]]:
    """Per problem of each split: whether the model's greedy answer is right."""
    model.load_state_dict(weights)
    return {name: toytrain.correct(model, setup.tok, rows, max_new_tokens=MAX_NEW_TOKENS)
            for name, rows in setup.sets.items()}


def _sft(model, start: dict, setup: Setup, rows: list[dict], steps: int, lr: float, seed: int) -> tuple[dict, list[float]]:
    model.load_state_dict(start)
    losses = toytrain.train(model, setup.tok, rows, steps=steps, lr=lr, batch_size=BATCH, seed=seed)
    return {k: v.clone() for k, v in model.state_dict().items()}, losses


def _flat_update(weights: dict, start: dict) -> torch.Tensor:
    return torch.cat([(weights[k] - start[k]).flatten().double() for k in start])


def _diagnostics(branches: list[dict], start: dict) -> dict:
    """Relative update per branch, mean pairwise cosine of the updates (as mot_plugin.diagnostics)."""
    norm = torch.cat([v.flatten().double() for v in start.values()]).norm()
    updates = [_flat_update(b, start) for b in branches]
    cosines = [float(torch.nn.functional.cosine_similarity(u, v, dim=0))
               for i, u in enumerate(updates) for v in updates[i + 1:]]
    return {"relative_update": [float(u.norm() / norm) for u in updates], "mean_cosine": statistics.mean(cosines)}


def _cell(cell: str) -> tuple[int, float, int]:
    hidden, lr, steps = cell.split(",")
    return int(hidden), float(lr), int(steps)


def run_mot(setup: Setup, cell: str, rounds: int, seed: int) -> dict:
    """One seed of one cell: the student and MoT round by round (branches, merge, diagnostics)."""
    hidden, lr, steps = _cell(cell)
    start = setup.student(hidden, seed)
    model = toy.new_student(setup.tok, 0, hidden)
    row: dict = {"cell": cell, "seed": seed, "student": _marks(model, setup, start), "rounds": []}
    student = start
    for r in range(1, rounds + 1):
        trained = [_sft(model, student, setup, rows, steps, lr, seed + r - 1) for rows in setup.corpora.values()]
        branches = [w for w, _ in trained]
        merged = toytrain.average(branches)
        row["rounds"].append({
            "branches": {name: _marks(model, setup, w) for name, w in zip(setup.corpora, branches)},
            "loss_first": [statistics.mean(losses[:3]) for _, losses in trained],
            "loss_last": [statistics.mean(losses[-3:]) for _, losses in trained],
            "merged": _marks(model, setup, merged),
            **_diagnostics(branches, student),
        })
        student = merged
    return row


def run_baselines(setup: Setup, cell: str, rounds: int, seed: int) -> dict:
    """One seed of the baselines of a choice: STD and MTD at equal lineage budget and equal compute, one-shot."""
    hidden, lr, steps = _cell(cell)
    start = setup.student(hidden, seed)
    model = toy.new_student(setup.tok, 0, hidden)
    union = [r for rows in setup.corpora.values() for r in rows]
    k = len(setup.corpora)
    row: dict = {"cell": cell, "rounds_matched": rounds, "seed": seed, "student": _marks(model, setup, start)}
    for budget, total in (("lineage", rounds * steps), ("compute", k * rounds * steps)):
        singles = {name: _sft(model, start, setup, rows, total, lr, seed) for name, rows in setup.corpora.items()}
        row[f"single_{budget}"] = {name: _marks(model, setup, w) for name, (w, _) in singles.items()}
        row[f"single_{budget}_loss"] = {name: [losses[0], statistics.mean(losses[-3:])] for name, (_, losses) in singles.items()}
        weights, losses = _sft(model, start, setup, union, total, lr, seed)
        row[f"union_{budget}"] = _marks(model, setup, weights)
        row[f"union_{budget}_loss"] = [losses[0], statistics.mean(losses[-3:])]
        if budget == "lineage":
            row["oneshot"] = _marks(model, setup, toytrain.average([w for w, _ in singles.values()]))
    return row


# ---------------------------------------------------------------- summaries

def _acc(marks: list[bool]) -> float:
    return sum(marks) / len(marks)


def _slice(marks: list[bool], split: str, setup_tags: dict[str, list[str]], name: str | None) -> list[bool]:
    return [m for m, t in zip(marks, setup_tags[split]) if name is None or t == name]


def stat(per_seed: list[dict[str, list[bool]]], split: str, tags: dict[str, list[str]], name: str | None = None) -> dict:
    """Mean and std over seeds of one model's accuracy on a split (or one slice of it), and the pooled
    Wilson 95% interval."""
    marks = [_slice(m[split], split, tags, name) for m in per_seed]
    accs = [_acc(m) for m in marks]
    pooled = [x for m in marks for x in m]
    low, high = wilson_interval(sum(pooled), len(pooled))
    return {"mean": statistics.mean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0, "ci": [low, high]}


def fmt(s: dict) -> str:
    return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f} [{100 * s['ci'][0]:.0f}, {100 * s['ci'][1]:.0f}]"


def _tags() -> dict[str, list[str]]:
    train, validation, test, _ = toy.split_problems(0, 400, 300, 300, 0)
    return {"val": [toy.tag(a, b) for _, a, b in validation], "test": [toy.tag(a, b) for _, a, b in test]}


def mot_table(rows: list[dict]) -> str:
    """Per cell and round: MoT's merged student on validation (the choice) and test (reported), per slice."""
    tags = _tags()
    cells: dict[str, list[dict]] = {}
    for row in rows:
        cells.setdefault(row["cell"], []).append(row)
    lines = ["| width | lr | steps/round | round | seeds | val (choice) | test | test skill | test kept "
             "| mean branch test | merge - mean branch | update | cosine | loss first -> last |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    best = None
    for cell, seeds in cells.items():
        hidden, lr, steps = cell.split(",")
        s0 = [r["student"] for r in seeds]
        lines.append(f"| {hidden} | {lr} | {steps} | 0 (student) | {len(seeds)} | {fmt(stat(s0, 'val', tags))} | "
                     f"{fmt(stat(s0, 'test', tags))} | {fmt(stat(s0, 'test', tags, 'skill'))} | "
                     f"{fmt(stat(s0, 'test', tags, 'kept'))} | | | | | |")
        for r in range(min(len(s["rounds"]) for s in seeds)):
            d = [s["rounds"][r] for s in seeds]
            merged = [x["merged"] for x in d]
            val = stat(merged, "val", tags)
            branch_mean = statistics.mean(_acc(m["test"]) for x in d for m in x["branches"].values())
            gain = statistics.mean(_acc(x["merged"]["test"]) - statistics.mean(_acc(m["test"]) for m in x["branches"].values())
                                   for x in d)
            update = statistics.mean(u for x in d for u in x["relative_update"])
            cosine = statistics.mean(x["mean_cosine"] for x in d)
            first = statistics.mean(v for x in d for v in x["loss_first"])
            last = statistics.mean(v for x in d for v in x["loss_last"])
            lines.append(f"| {hidden} | {lr} | {steps} | {r + 1} | {len(seeds)} | {fmt(val)} | {fmt(stat(merged, 'test', tags))} | "
                         f"{fmt(stat(merged, 'test', tags, 'skill'))} | {fmt(stat(merged, 'test', tags, 'kept'))} | "
                         f"{100 * branch_mean:.1f} | {100 * gain:+.1f} | {100 * update:.1f}% | {cosine:.2f} | "
                         f"{first:.2f} -> {last:.2f} |")
            if best is None or val["mean"] > best[0]:
                best = (val["mean"], cell, r + 1)
    if best:
        lines.append(f"\nChosen on validation (best mean validation accuracy of MoT's merged student): cell {best[1]}, "
                     f"round {best[2]} ({100 * best[0]:.1f}%).")
    return "\n".join(lines)


def baseline_table(rows: list[dict]) -> str:
    """The baselines of one choice, per budget, on test (overall and per slice) with validation beside."""
    tags = _tags()
    names = list(rows[0]["single_lineage"])
    models = [("student", lambda r: r["student"])]
    for budget in ("lineage", "compute"):
        models += [(f"single {n} ({budget})", lambda r, n=n, b=budget: r[f"single_{b}"][n]) for n in names]
        models.append((f"union ({budget})", lambda r, b=budget: r[f"union_{b}"]))
    models.append(("one-shot merge (lineage)", lambda r: r["oneshot"]))
    lines = [f"Baselines of cell {rows[0]['cell']}, {rows[0]['rounds_matched']} rounds, {len(rows)} seeds:\n",
             "| model | val | test | test skill | test kept |", "|---|---|---|---|---|"]
    for label, get in models:
        per_seed = [get(r) for r in rows]
        lines.append(f"| {label} | {fmt(stat(per_seed, 'val', tags))} | {fmt(stat(per_seed, 'test', tags))} | "
                     f"{fmt(stat(per_seed, 'test', tags, 'skill'))} | {fmt(stat(per_seed, 'test', tags, 'kept'))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", default=[], help="width,lr,steps ... (MoT sweep)")
    parser.add_argument("--baselines", default=None, help="width,lr,steps: the baselines of this choice")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for this tiny model)")
    parser.add_argument("--pretrain-steps", type=int, default=toy.PRETRAIN_STEPS, help="the students' (a quick check: few)")
    parser.add_argument("--cache", type=Path, default=None, help="keep pretrained students here")
    parser.add_argument("--out", type=Path, default=None,
                        help="write every row (per seed, per problem) as JSON; rows already there are kept and not rerun")
    parser.add_argument("--table", nargs="+", type=Path, default=None, help="print the tables of these row files")
    args = parser.parse_args()
    if args.table:
        rows = [r for path in args.table for r in json.loads(path.read_text())]
        mot_rows = [r for r in rows if "rounds" in r]
        base_rows = [r for r in rows if "oneshot" in r]
        print(mot_table(mot_rows) if mot_rows else "", "\n\n", baseline_table(base_rows) if base_rows else "")
        return
    torch.set_num_threads(args.threads)
    setup = Setup(args.cache, args.pretrain_steps)
    rows: list[dict] = json.loads(args.out.read_text()) if args.out and args.out.exists() else []  # resume
    done = {(r["cell"], r["seed"], "rounds" in r) for r in rows}
    t0 = time.time()
    jobs = [(run_mot, cell) for cell in args.cells] + ([(run_baselines, args.baselines)] if args.baselines else [])
    for run, cell in jobs:
        for seed in args.seeds:
            if (cell, seed, run is run_mot) in done:
                continue
            rows.append(run(setup, cell, args.rounds, seed))
            print(f"[{time.time() - t0:.0f}s] {run.__name__} {cell} seed {seed}", flush=True)
            if args.out:
                args.out.write_text(json.dumps(rows))
    mot_rows = [r for r in rows if "rounds" in r]
    if mot_rows:
        print(mot_table(mot_rows))
    if args.baselines:
        print(baseline_table([r for r in rows if "oneshot" in r]))
    print(f"\ntotal {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
