"""The planner: recipe -> the ordered steps of a run, each with the exact config it needs.

Pure: it asks the planning hooks for configs and computes fingerprints; it writes nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pluggy

from mot_plugin.recipe import Recipe
from mot_plugin.specs import BranchSpec, MergeSpec, Step


@dataclass(frozen=True)
class Plan:
    """Every step of a run, in the order it runs."""

    recipe: Recipe
    steps: tuple[Step, ...]

    @property
    def branch_steps(self) -> int:
        """Total optimizer steps over all branches of all rounds (the compute MoT spends)."""
        return sum(s.spec.max_steps for s in self.steps if s.kind == "branch")

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def final_student(self) -> Path:
        return self.steps[-1].output_dir

    def disk_estimate(self, student_bytes: int) -> int:
        """Bytes the run keeps: every branch's and every merge's weights (dtype as the student's)."""
        return student_bytes * len(self.steps)


def fingerprint(config: dict, deps: list[str]) -> str:
    text = json.dumps({"config": config, "deps": deps}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_run(recipe: Recipe, hook: pluggy.HookRelay) -> Plan:
    """Plan every round: one branch per teacher from the round's student, then their merge."""
    mot = recipe.mot
    run_dir = recipe.run_dir
    tokenizer = recipe.axolotl.get("tokenizer_config") or recipe.student
    student, student_step = recipe.student, None
    steps: list[Step] = []
    for r in range(1, mot.rounds + 1):
        round_dir = run_dir / f"round-{r:02d}"
        branches = []
        for teacher in mot.teachers:
            branch_dir = round_dir / f"branch-{teacher.name}"
            branch = BranchSpec(
                round=r,
                teacher=teacher,
                student=student,
                tokenizer=tokenizer,
                output_dir=branch_dir / "model",
                prepared_dir=run_dir / "prepared" / teacher.name,
                max_steps=mot.steps_per_round,
                seed=mot.seed + r - 1,
            )
            config = hook.mot_branch_config(recipe=recipe, branch=branch)
            deps = (student_step.id,) if student_step else ()
            steps.append(Step(
                id=branch.step_id, kind="branch", spec=branch, config=config,
                config_path=branch_dir / "axolotl.yaml", log_path=branch_dir / "train.log",
                marker_path=branch_dir / "done.json",
                fingerprint=fingerprint(config, [student_step.fingerprint] if student_step else []),
                deps=deps,
            ))
            branches.append(branch)
        branch_steps = steps[-len(branches):]
        merge = MergeSpec(round=r, branches=tuple(branches), student=student, output_dir=round_dir / "merged")
        config = hook.mot_merge_config(recipe=recipe, merge=merge)
        student_step = Step(
            id=merge.step_id, kind="merge", spec=merge, config=config,
            config_path=round_dir / "merge.yaml", log_path=round_dir / "merge.log",
            marker_path=round_dir / "merge.done.json",
            fingerprint=fingerprint(config, [s.fingerprint for s in branch_steps]),
            deps=tuple(s.id for s in branch_steps),
        )
        steps.append(student_step)
        student = str(merge.output_dir)
    return Plan(recipe=recipe, steps=tuple(steps))
