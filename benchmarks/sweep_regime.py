"""Where does MoT work on the toy? A seeded sweep over the regime, in-process.

Each cell runs the built-in default's miniature of MoT with the plain PyTorch loop of
mot_plugin.toytrain (the same tiny Qwen3, data, tokenizer, AdamW and warm-up + cosine schedule as
recipes/toy.yaml, without Axolotl's start-up cost per step): R rounds of K branches x S steps from
the current student, a uniform average, every branch and merge evaluated on the held-out problems;
and the baselines at the same sequential budget (R x S steps): each teacher alone (STD), all
teachers' data together (MTD), and the one-shot merge of the single-teacher models.

Axes: student pretraining (on: `mot toy`'s, the neutral phrasing; mixed: every phrasing; off: random
init; --pretrain-steps), learning rate, steps per round, teacher similarity (`shared`: the toy's teachers, one
procedure in three phrasings; `conflicting`: three different procedures). At least 3 seeds per
cell (the seed changes the student's pretraining and every branch's data order). Prints a Markdown
table (mean ± std over seeds, Wilson 95% interval of the pooled accuracy) and writes JSON rows.

    python benchmarks/sweep_regime.py --out benchmarks/sweep.json            # the cells in docs/results.md
    (benchmarks/results/sweep-*.json: the rows behind the table measured on 2026-12-01, one file a cell)
    python benchmarks/sweep_regime.py --cells "on,shared,3e-4,40" --seeds 0 1 2
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

DEFAULT_CELLS = [
    # pretrain, teachers, lr, steps per round (the cells in docs/results.md)
    "on,shared,1e-4,20",
    "on,shared,1e-4,50",
    "on,shared,3e-4,10",
    "mixed,shared,3e-4,20",
    "mixed,shared,1e-3,20",
    "on,conflicting,1e-4,20",
    "off,shared,3e-4,20",
]
BATCH = 16
"""Sequences per step, as recipes/toy.yaml's micro_batch_size."""
MAX_NEW_TOKENS = 80
"""As recipes/toy.yaml's eval.max_new_tokens (the wordy teacher's answers are about 60 tokens)."""


def _split(a: int, b: int) -> str:
    """A different procedure: tens and ones added separately, then together."""
    t, o = (a // 10 + b // 10) * 10, a % 10 + b % 10
    return f"{a // 10 * 10}+{b // 10 * 10}={t}. {a % 10}+{b % 10}={o}. {t}+{o}={t + o}. #### {t + o}"


def _countup(a: int, b: int) -> str:
    """A third procedure: count up from the first operand by tens, then add the ones."""
    steps = [a + 10 * k for k in range(b // 10 + 1)]
    return f"{' '.join(map(str, steps))}. {steps[-1]}+{b % 10}={steps[-1] + b % 10}. #### {steps[-1] + b % 10}"


TEACHER_SETS = {
    "shared": dict(toy.SOLVERS),
    "conflicting": {"brief": toy.brief, "split": _split, "countup": _countup},
}


class Setup:
    """The toy's data (fixed, data seed 0) and one tokenizer over every format."""

    def __init__(self, n_train: int, n_eval: int, n_pretrain: int, seeds: list[int]):
        train, held_out, generic = toy.split_problems(0, n_train, n_eval, n_pretrain)
        drawn = train + held_out + generic
        self.corpora = {kind: {name: [toy.chat(p, solve(a, b)) for p, a, b in train] for name, solve in solvers.items()}
                        for kind, solvers in TEACHER_SETS.items()}
        self.pretraining = {(kind, seed): toy.pretraining_rows(generic, seed, phrasings)
                            for kind, phrasings in (("on", "neutral"), ("mixed", "all")) for seed in seeds}
        self.eval = [{"prompt": p, "answer": str(a + b)} for p, a, b in held_out]
        texts = [p for p, _, _ in drawn] + [r["messages"][1]["content"] for r in self.pretraining["mixed", seeds[0]]]
        texts += [r["messages"][1]["content"] for rows in self.corpora["shared"].values() for r in rows]
        self.tok = toy.tokenizer(texts)
        self.students: dict[tuple[str, int], dict] = {}

    def student(self, pretrain: str, seed: int, steps: int) -> dict:
        """The round-0 student's weights (pretrained once per seed and cached)."""
        key = (pretrain, seed)
        if key not in self.students:
            model = toy.new_student(self.tok, seed)
            if pretrain != "off":
                toytrain.pretrain(model, self.tok, self.pretraining[pretrain, seed], steps=steps, seed=seed)
            self.students[key] = {k: v.clone() for k, v in model.state_dict().items()}
        return self.students[key]


def _accuracy(model, setup: Setup, weights: dict) -> list[bool]:
    model.load_state_dict(weights)
    return toytrain.correct(model, setup.tok, setup.eval, max_new_tokens=MAX_NEW_TOKENS)


def _sft(model, setup: Setup, start: dict, rows: list[dict], steps: int, lr: float, seed: int) -> tuple[dict, float]:
    model.load_state_dict(start)
    losses = toytrain.train(model, setup.tok, rows, steps=steps, lr=lr, batch_size=BATCH, seed=seed)
    return {k: v.clone() for k, v in model.state_dict().items()}, statistics.mean(losses[-5:])


def _flat_update(weights: dict, start: dict) -> torch.Tensor:
    return torch.cat([(weights[k] - start[k]).flatten().double() for k in start])


def _diagnostics(branches: list[dict], start: dict) -> dict:
    """Relative update per branch, mean pairwise cosine of the updates (as mot_plugin.diagnostics)."""
    norm = torch.cat([v.flatten().double() for v in start.values()]).norm()
    updates = [_flat_update(b, start) for b in branches]
    cosines = [float(torch.nn.functional.cosine_similarity(u, v, dim=0))
               for i, u in enumerate(updates) for v in updates[i + 1:]]
    return {"relative_update": [float(u.norm() / norm) for u in updates], "mean_cosine": statistics.mean(cosines)}


def run_cell(setup: Setup, pretrain: str, teachers: str, lr: float, steps: int, rounds: int, seed: int,
             pretrain_steps: int) -> dict:
    """One seed of one cell: MoT round by round, and the baselines."""
    start = setup.student(pretrain, seed, pretrain_steps)
    model = toy.new_student(setup.tok, 0)
    corpora = setup.corpora[teachers]
    row: dict = {"pretrain": pretrain, "teachers": teachers, "lr": lr, "steps": steps, "rounds": rounds, "seed": seed}
    row["student"] = _accuracy(model, setup, start)
    row["rounds_detail"] = []
    student = start
    for r in range(1, rounds + 1):
        trained = [_sft(model, setup, student, rows, steps, lr, seed + r - 1) for rows in corpora.values()]
        branches = [w for w, _ in trained]
        merged = toytrain.average(branches)
        row["rounds_detail"].append({
            "branches": {name: _accuracy(model, setup, w) for name, w in zip(corpora, branches)},
            "losses": [loss for _, loss in trained],
            "merged": _accuracy(model, setup, merged),
            **_diagnostics(branches, student),
        })
        student = merged
    budget = rounds * steps
    singles = {name: _sft(model, setup, start, rows, budget, lr, seed)[0] for name, rows in corpora.items()}
    row["single"] = {name: _accuracy(model, setup, w) for name, w in singles.items()}
    union = [r for rows in corpora.values() for r in rows]
    row["union"] = _accuracy(model, setup, _sft(model, setup, start, union, budget, lr, seed)[0])
    row["oneshot"] = _accuracy(model, setup, toytrain.average(list(singles.values())))
    return row


def _acc(marks: list[bool]) -> float:
    return sum(marks) / len(marks)


def _summary(rows: list[dict]) -> dict:
    """Per cell: mean and std over seeds of each model's accuracy, and the pooled Wilson interval."""

    def stat(get) -> dict:
        marks = [get(r) for r in rows]
        accs = [_acc(m) for m in marks]
        pooled = [x for m in marks for x in m]
        low, high = wilson_interval(sum(pooled), len(pooled))
        return {"mean": statistics.mean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "ci": [low, high]}

    last = lambda r: r["rounds_detail"][-1]  # noqa: E731
    out = {
        "student": stat(lambda r: r["student"]),
        "mot_round1": stat(lambda r: r["rounds_detail"][0]["merged"]),
        "mot_final": stat(lambda r: last(r)["merged"]),
        "best_single": stat(lambda r: max(r["single"].values(), key=_acc)),
        "union": stat(lambda r: r["union"]),
        "oneshot": stat(lambda r: r["oneshot"]),
    }
    gains_mean, gains_best = [], []
    for r in rows:
        for d in r["rounds_detail"]:
            accs = [_acc(m) for m in d["branches"].values()]
            gains_mean.append(_acc(d["merged"]) - statistics.mean(accs))
            gains_best.append(_acc(d["merged"]) - max(accs))
    out["merge_gain_vs_mean_branch"] = statistics.mean(gains_mean)
    out["merge_gain_vs_best_branch"] = statistics.mean(gains_best)
    out["relative_update_r1"] = statistics.mean(u for r in rows for u in r["rounds_detail"][0]["relative_update"])
    out["mean_cosine_r1"] = statistics.mean(r["rounds_detail"][0]["mean_cosine"] for r in rows)
    return out


def _fmt(s: dict) -> str:
    return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f} [{100 * s['ci'][0]:.0f}, {100 * s['ci'][1]:.0f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", default=DEFAULT_CELLS, help="pretrain,teachers,lr,steps ...")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pretrain-steps", type=int, default=toy.PRETRAIN_STEPS)
    parser.add_argument("--n-train", type=int, default=400)
    parser.add_argument("--n-eval", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for this tiny model)")
    parser.add_argument("--out", type=Path, default=None, help="write every row (per seed, per problem) as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    setup = Setup(args.n_train, args.n_eval, 2000, args.seeds)
    results = []
    t0 = time.time()
    for cell in args.cells:
        pretrain, teachers, lr, steps = cell.split(",")
        rows = [run_cell(setup, pretrain, teachers, float(lr), int(steps), args.rounds, seed, args.pretrain_steps)
                for seed in args.seeds]
        summary = _summary(rows)
        results.append({"cell": cell, "summary": summary, "rows": rows})
        print(f"[{time.time() - t0:.0f}s] {cell}: student {_fmt(summary['student'])}, MoT final "
              f"{_fmt(summary['mot_final'])}, best single {_fmt(summary['best_single'])}, union {_fmt(summary['union'])}, "
              f"update {100 * summary['relative_update_r1']:.1f}%, cosine {summary['mean_cosine_r1']:.2f}", flush=True)
        if args.out:
            args.out.write_text(json.dumps(results))
    print(f"\n{len(args.seeds)} seeds per cell, {args.rounds} rounds, {args.n_eval} held-out problems; accuracy % mean ± std "
          f"over seeds [pooled Wilson 95%]\n")
    print("| pretrain | teachers | lr | steps/round | student | MoT round 1 | MoT final | best single (STD) | union (MTD) "
          "| one-shot | merge - mean branch | merge - best branch | update r1 | cosine r1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for res in results:
        s = res["summary"]
        pretrain, teachers, lr, steps = res["cell"].split(",")
        print(f"| {pretrain} | {teachers} | {lr} | {steps} | {_fmt(s['student'])} | {_fmt(s['mot_round1'])} | "
              f"{_fmt(s['mot_final'])} | {_fmt(s['best_single'])} | {_fmt(s['union'])} | {_fmt(s['oneshot'])} | "
              f"{100 * s['merge_gain_vs_mean_branch']:+.1f} | {100 * s['merge_gain_vs_best_branch']:+.1f} | "
              f"{100 * s['relative_update_r1']:.1f}% | {s['mean_cosine_r1']:.2f} |")
    print(f"\ntotal {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
