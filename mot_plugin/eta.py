"""How long a run will take: each step's wall time estimated from the run's own finished steps (their
markers' `seconds`), or, before any has finished, each branch's training from a tokens-per-second
figure the user gives. What `mot plan` prints per round and `mot run` prints as an ETA.

Branch time is fitted as `a + b * max_steps` over the finished branches (proportional to max_steps
when they all trained the same number of steps); merges, evaluations and data preparation take the
mean of their finished kind. A round's steps of one kind run `mot.launch.parallel` at a time.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

from mot_plugin.atomic import read_json
from mot_plugin.planner import Plan
from mot_plugin.rundir import step_state
from mot_plugin.steps import Step


@dataclass(frozen=True)
class Estimate:
    """Seconds per step of the plan (None: unknown), and where the figures come from."""

    seconds: dict[str, float | None]
    source: str

    def total(self, steps: list[Step], parallel: int) -> float | None:
        """Wall seconds of `steps`: per round (and for the baselines) and kind, `parallel` at a time."""
        groups: dict[tuple, list[float]] = {}
        for step in steps:
            value = self.seconds.get(step.id)
            if value is None:
                return None
            groups.setdefault(step.eta_group, []).append(value)
        return sum(sum(v) / min(parallel, len(v)) if concurrent else sum(v)
                   for (*_, concurrent), v in groups.items())


def finished_seconds(plan: Plan) -> dict[str, float]:
    """The wall seconds of every step with a marker (done, or done with an earlier config)."""
    found = {}
    for step in plan.steps:
        marker = read_json(step.marker_path)
        if isinstance(marker, dict) and isinstance(marker.get("seconds"), (int, float)):
            found[step.id] = float(marker["seconds"])
    return found


def _branch_model(branches: list[Step], seconds: dict[str, float]) -> Callable[[int], float] | None:
    """seconds(max_steps) fitted on the finished branches."""
    points = [(s.optimizer_steps, seconds[s.id]) for s in branches if s.id in seconds]
    if not points:
        return None
    if len({x for x, _ in points}) > 1:
        slope, intercept = statistics.linear_regression([x for x, _ in points], [y for _, y in points])
        if slope > 0 and intercept >= 0:
            return lambda steps: intercept + slope * steps
    rate = statistics.mean(y / x for x, y in points)
    return lambda steps: rate * steps


def _tokens_per_branch_step(plan: Plan, step: Step) -> int:
    """Tokens one optimizer step of a branch trains at most (sequences padded to `sequence_len`)."""
    config = step.config
    return (int(config.get("micro_batch_size") or 1) * int(config.get("gradient_accumulation_steps") or 1)
            * int(config.get("sequence_len") or 2048) * plan.recipe.mot.launch.processes)


def estimate(plan: Plan, tokens_per_second: float | None = None) -> Estimate:
    """Every step's seconds: those finished as they took, the others from the finished ones of their
    kind; with none finished, branches at `tokens_per_second` (merges, evaluations unknown)."""
    done = finished_seconds(plan)
    kinds: dict[str, list[Step]] = {}
    for step in plan.steps:
        kinds.setdefault(step.kind, []).append(step)
    means = {kind: statistics.mean(done[s.id] for s in steps if s.id in done)
             for kind, steps in kinds.items() if any(s.id in done for s in steps)}
    branch = _branch_model([s for s in plan.steps if s.trains], done)
    seconds: dict[str, float | None] = {}
    for step in plan.steps:
        if step.id in done:
            seconds[step.id] = done[step.id]
        elif step.trains and branch is not None:
            seconds[step.id] = branch(step.optimizer_steps)
        elif step.trains and tokens_per_second and not done:
            seconds[step.id] = step.optimizer_steps * _tokens_per_branch_step(plan, step) / tokens_per_second
        else:
            seconds[step.id] = means.get(step.kind)
    if done:
        source = f"from the {len(done)} finished step(s) of this run"
    elif tokens_per_second:
        source = (f"branches at {tokens_per_second:g} tokens/s, every sequence sequence_len long (an upper "
                  f"bound); merges and evaluations not counted")
        seconds = {k: (v if v is not None else 0.0) for k, v in seconds.items()}
    else:
        source = "unknown until a step has finished (mot plan --tokens-per-second N estimates branches)"
    return Estimate(seconds, source)


def human_seconds(seconds: float) -> str:
    """`45 s`, `12 min`, `3.4 h`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe(plan: Plan, tokens_per_second: float | None = None) -> list[str]:
    """`mot plan`'s time lines: per round, the baselines, and what is left."""
    found = estimate(plan, tokens_per_second)
    parallel = plan.recipe.mot.launch.parallel
    rounds = [[s for s in plan.steps if s.baseline is None and s.round == r]
              for r in range(0, plan.recipe.mot.rounds + 1)]
    per_round = [found.total(steps, parallel) for steps in rounds[1:]]
    if all(v is None for v in per_round):
        return [f"time: {found.source}"]
    cells = ", ".join(f"{r}: {'?' if v is None else human_seconds(v)}" for r, v in enumerate(per_round, 1))
    lines = [f"time ({found.source}): rounds {cells}"]
    baselines = [s for s in plan.steps if s.baseline is not None]
    if baselines:
        total = found.total(baselines, parallel)
        lines.append(f"  baselines: {'?' if total is None else human_seconds(total)}")
    left = remaining(plan, found)
    if left is not None:
        lines.append(f"  left to run: {human_seconds(left)}")
    return lines


def _left(plan: Plan) -> list[Step]:
    return [s for s in plan.steps if step_state(s) != "done"]


def remaining(plan: Plan, found: Estimate | None = None) -> float | None:
    """Wall seconds of the steps not done yet (None: unknown)."""
    return (found or estimate(plan)).total(_left(plan), plan.recipe.mot.launch.parallel)


def eta_line(plan: Plan) -> str | None:
    """`mot run`'s ETA after a step: about how long the steps not done yet take, from the finished ones."""
    left = _left(plan)
    seconds = estimate(plan).total(left, plan.recipe.mot.launch.parallel) if left else None
    return None if seconds is None else f"ETA: about {human_seconds(seconds)} for the {len(left)} step(s) left"

