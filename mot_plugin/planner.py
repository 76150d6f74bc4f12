"""The planner: recipe -> the ordered steps of a run, each with the exact config it needs.

Pure: it asks the planning hooks for configs and computes fingerprints; it writes nothing.
Order: the round-0 student's evaluation, then each round (branches, merge, evaluation), then the
baselines (each followed by its evaluation).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import pluggy

from mot_plugin.recipe import Recipe, Teacher
from mot_plugin.specs import BranchSpec, EvalSpec, MergeSpec, Step


@dataclass(frozen=True)
class Plan:
    """Every step of a run, in the order it runs."""

    recipe: Recipe
    steps: tuple[Step, ...]

    @property
    def branch_steps(self) -> int:
        """Total optimizer steps over all MoT branches (the compute MoT spends)."""
        return sum(s.spec.max_steps for s in self.steps if s.kind == "branch" and s.round > 0)

    @property
    def baseline_steps(self) -> int:
        """Total optimizer steps over all baseline branches."""
        return sum(s.spec.max_steps for s in self.steps if s.kind == "branch" and s.round == 0)

    def final_student(self) -> Path:
        return next(s.output_dir for s in reversed(self.steps) if s.kind == "merge" and s.round > 0)

    def disk_estimate(self, student_bytes: int) -> int:
        """Bytes of weights the run keeps: one checkpoint per branch and per merge."""
        return student_bytes * sum(s.kind != "eval" for s in self.steps)


def fingerprint(config: dict, deps: list[Step]) -> str:
    text = json.dumps({"config": config, "deps": [d.fingerprint for d in deps]}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Planner:
    """Builds the steps of one run, in order."""

    def __init__(self, recipe: Recipe, hook: pluggy.HookRelay):
        self.recipe, self.hook = recipe, hook
        self.run_dir = recipe.run_dir
        self.tokenizer = recipe.axolotl.get("tokenizer_config") or recipe.student
        self.steps: list[Step] = []

    def branch(self, step_id: str, round_: int, teacher: Teacher, start: Step | None, directory: Path,
               max_steps: int, seed: int) -> Step:
        spec = BranchSpec(
            step_id=step_id, round=round_, teacher=teacher,
            student=str(start.output_dir) if start else self.recipe.student, tokenizer=self.tokenizer,
            output_dir=directory / "model", prepared_dir=self.run_dir / "prepared" / teacher.name,
            max_steps=max_steps, seed=seed,
        )
        config = self.hook.mot_branch_config(recipe=self.recipe, branch=spec)
        return self._add(Step(
            id=step_id, kind="branch", spec=spec, config=config, config_path=directory / "axolotl.yaml",
            log_path=directory / "train.log", marker_path=directory / "done.json",
            fingerprint=fingerprint(config, [start] if start else []), deps=(start.id,) if start else (),
        ))

    def merge(self, step_id: str, round_: int, branches: list[Step], start: Step | None, directory: Path) -> Step:
        spec = MergeSpec(
            step_id=step_id, round=round_, branches=tuple(b.spec for b in branches),
            student=str(start.output_dir) if start else self.recipe.student, output_dir=directory / "merged",
        )
        config = self.hook.mot_merge_config(recipe=self.recipe, merge=spec)
        return self._add(Step(
            id=step_id, kind="merge", spec=spec, config=config, config_path=directory / "merge.yaml",
            log_path=directory / "merge.log", marker_path=directory / "merge.done.json",
            fingerprint=fingerprint(config, branches), deps=tuple(b.id for b in branches),
        ))

    def evaluate(self, name: str, round_: int, model: Step | None, ends_round: bool = False) -> None:
        settings = self.recipe.mot.eval
        if settings is None:
            return
        directory = self.run_dir / "eval" / name
        spec = EvalSpec(step_id=f"eval/{name}", round=round_, name=name,
                        model=str(model.output_dir) if model else self.recipe.student, output_dir=directory / "out")
        config = {"model": spec.model, **settings.model_dump(mode="json")}
        self._add(Step(
            id=spec.step_id, kind="eval", spec=spec, config=config, config_path=directory / "eval.yaml",
            log_path=directory / "eval.log", marker_path=directory / "done.json",
            fingerprint=fingerprint(config, [model] if model else []), deps=(model.id,) if model else (),
            ends_round=ends_round,
        ))

    def _add(self, step: Step) -> Step:
        self.steps.append(step)
        return step

    def rounds(self) -> None:
        mot = self.recipe.mot
        student = None
        self.evaluate("round-00", 0, None)
        for r in range(1, mot.rounds + 1):
            round_dir = self.run_dir / f"round-{r:02d}"
            branches = [
                self.branch(f"round-{r:02d}/branch-{t.name}", r, t, student, round_dir / f"branch-{t.name}",
                            mot.steps_per_round, mot.seed + r - 1)
                for t in mot.teachers
            ]
            student = self.merge(f"round-{r:02d}/merge", r, branches, student, round_dir)
            if mot.eval is None:
                self.steps[-1] = student = replace(student, ends_round=True)
            self.evaluate(f"round-{r:02d}", r, student, ends_round=True)

    def baselines(self) -> None:
        mot = self.recipe.mot
        lineage = mot.rounds * mot.steps_per_round
        matched = lineage * len(mot.teachers) if mot.baseline_budget == "compute" else lineage
        base_dir = self.run_dir / "baselines"
        singles: list[Step] = []
        if "single" in mot.baselines or ("oneshot" in mot.baselines and matched == lineage):
            for t in mot.teachers:
                name = f"single-{t.name}"
                singles.append(self.branch(f"baseline/{name}", 0, t, None, base_dir / name, matched, mot.seed))
                if "single" in mot.baselines:
                    self.evaluate(name, 0, singles[-1])
        if "union" in mot.baselines:
            union = Teacher(name="union", datasets=[d for t in mot.teachers for d in t.datasets])
            step = self.branch("baseline/union", 0, union, None, base_dir / "union", matched, mot.seed)
            self.evaluate("union", 0, step)
        if "oneshot" in mot.baselines:
            branches = singles if matched == lineage else [
                self.branch(f"baseline/oneshot-{t.name}", 0, t, None, base_dir / f"oneshot-{t.name}", lineage,
                            mot.seed)
                for t in mot.teachers
            ]
            step = self.merge("baseline/oneshot", 0, branches, None, base_dir / "oneshot")
            self.evaluate("oneshot", 0, step)


def plan_run(recipe: Recipe, hook: pluggy.HookRelay) -> Plan:
    """Plan the run: evaluation of the student, every round, then the baselines."""
    planner = _Planner(recipe, hook)
    planner.rounds()
    planner.baselines()
    return Plan(recipe=recipe, steps=tuple(planner.steps))
