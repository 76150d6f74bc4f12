"""The planner: recipe -> the ordered steps of a run, each with the exact config it needs.

Pure: it asks the planning hooks for configs and computes fingerprints; it writes nothing.
Order: the round-0 student's evaluation, then each round (branches, merge, the branches' evaluations
when `eval.branches` is on, the merged student's evaluation), then each baseline the recipe lists: a
registered `Baseline` plans its own steps through a `Lineage`.

With merge candidates a round merges its branches once per candidate, evaluates each merge on the
validation split and chooses one (a `choose` step). With a validation split, every evaluation on the
test set runs last, once every round's choice is made (`_final_evaluation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pluggy

from mot_plugin.datahash import DataHashes
from mot_plugin.fingerprint import fingerprint
from mot_plugin.recipe import Recipe, Teacher
from mot_plugin.registry import collect
from mot_plugin.steps import (BranchSpec, BranchStep, ChooseSpec, ChooseStep, EvalSpec, EvalStep, MergeSpec, MergeStep,
                              PrepareSpec, PrepareStep, Step, markers)


@dataclass(frozen=True)
class Plan:
    """Every step of a run, in the order it runs."""

    recipe: Recipe
    steps: tuple[Step, ...]
    data_hashes: dict[str, dict] = field(default_factory=dict)
    """Every local training file's size, mtime and sha256 (recorded as `data.json`)."""

    @property
    def branch_steps(self) -> int:
        """Total optimizer steps over all MoT branches (the compute MoT spends)."""
        return sum(s.optimizer_steps for s in self.steps if s.baseline is None)

    @property
    def baseline_steps(self) -> int:
        """Total optimizer steps over all baseline branches."""
        return sum(s.optimizer_steps for s in self.steps if s.baseline is not None)

    def round_students(self) -> list[Step]:
        """The step that makes each MoT round's student, in round order: the round's merge, or its
        choice among merge candidates."""
        return [s for s in self.steps if s.makes_student]

    def final_student(self) -> Path:
        """The last round's student."""
        return self.round_students()[-1].output_dir

    def readers(self, step: Step) -> list[Step]:
        """The steps that need `step`'s output."""
        return [s for s in self.steps if step.id in s.deps]

    def prunable(self, step: Step) -> bool:
        """Weights deleted once every step that reads them has finished (`Step.prunable`): MoT and
        one-shot branches, MoT merge candidates, unless the recipe keeps them."""
        return step.prunable(self.readers(step), self.recipe.mot)

    def disk_estimate(self, student_bytes: int, adapter_bytes: int | None = None, merge_copy_bytes: int = 0) -> int:
        """Peak bytes of weights on disk, running the steps in order: every merge writes a checkpoint,
        every branch a checkpoint or (`adapter_bytes`) an adapter; while a merge runs it also holds
        `merge_copy_bytes` per branch (mergekit's copies of the student with each adapter merged in).
        Prunable branches are deleted once their readers have finished."""
        branch_bytes = student_bytes if adapter_bytes is None else adapter_bytes
        alive: list[Step] = []
        done: set[str] = set()
        peak = 0
        for step in self.steps:
            done.add(step.id)
            if step.checkpoint:
                alive.append(step)
            held = sum(s.checkpoint_bytes(student_bytes, branch_bytes) for s in alive)
            held += step.scratch_bytes(merge_copy_bytes)
            peak = max(peak, held)
            alive = [s for s in alive if not (self.prunable(s) and {r.id for r in self.readers(s)} <= done)]
        return peak


PER_BRANCH_KEYS = ("base_model", "output_dir", "max_steps", "seed", "mot_step")
"""Branch config keys that do not change how a teacher's data is tokenized."""


class _Planner:
    """Builds the steps of one run, in order."""

    def __init__(self, recipe: Recipe, hook: pluggy.HookRelay):
        self.recipe, self.hook = recipe, hook
        self.run_dir = recipe.run_dir
        self.tokenizer = recipe.axolotl.get("tokenizer_config") or recipe.student
        self.hashes = DataHashes(self.run_dir)
        self.prepare_first = recipe.mot.launch.parallel > 1
        self.prepared: dict[str, Step] = {}
        self.steps: list[Step] = []
        self.lineage: str | None = None
        """The baseline being planned (None: the MoT lineage); `_add` marks each step with it."""

    def branch(self, step_id: str, round_: int, teacher: Teacher, start: Step | None, directory: Path,
               max_steps: int, seed: int) -> Step:
        prepared_dir = self.run_dir / "prepared" / f"{teacher.name}-{self.hashes.datasets(teacher.datasets)}"
        spec = BranchSpec(
            step_id=step_id, round=round_, teacher=teacher,
            student=str(start.output_dir) if start else self.recipe.student, tokenizer=self.tokenizer,
            output_dir=directory / "model", prepared_dir=prepared_dir, max_steps=max_steps, seed=seed,
            adapter=self.recipe.adapter,
        )
        config = self.hook.mot_branch_config(recipe=self.recipe, branch=spec)
        deps = [start.id] if start else []
        if self.prepare_first:
            deps.append(self.prepare(spec, config).id)
        return self._add(BranchStep(
            id=step_id, spec=spec, config=config, config_path=directory / "axolotl.yaml",
            log_path=directory / "train.log", **markers(directory),
            fingerprint=fingerprint(config if start else {**config, "mot_student": self._content(spec.student)},
                                    [start] if start else [], self.run_dir), deps=tuple(deps),
        ))

    def prepare(self, branch: BranchSpec, config: dict) -> Step:
        """The step that tokenizes this branch's data (once per teacher), with the branch's own config."""
        name = branch.prepared_dir.name
        if name not in self.prepared:
            spec = PrepareSpec(step_id=f"prepare/{branch.teacher.name}", round=branch.round, teacher=branch.teacher,
                               output_dir=branch.prepared_dir)
            directory = branch.prepared_dir.parent
            config = {**config, "output_dir": str(branch.prepared_dir / "preprocess")}
            tokenization = {k: v for k, v in config.items() if k not in PER_BRANCH_KEYS}
            self.prepared[name] = self._add(PrepareStep(
                id=spec.step_id, spec=spec, config=config, config_path=directory / f"{name}.yaml",
                log_path=directory / f"{name}.log", **markers(directory, f"{name}."),
                fingerprint=fingerprint(tokenization, [], self.run_dir),
            ))
        return self.prepared[name]

    def merge(self, step_id: str, round_: int, branches: list[Step], start: Step | None, directory: Path,
              candidate: str | None = None) -> Step:
        """The merge of `branches` with the merge settings of `candidate` (None: the `merge:` block).
        With `weights: validation` each branch is evaluated on the validation split first, and the
        merge's config is a template (`merge.template.yaml`) until those accuracies are known."""
        recipe = self.recipe.with_merge(candidate)
        evals = [self.evaluate(b.id.removeprefix("baseline/").replace("/", "-"), b.round, b, role="branch",
                               teacher=b.spec.teacher.name, split="validation")
                 for b in branches] if recipe.mot.merge.weights == "validation" else []
        spec = MergeSpec(
            step_id=step_id, round=round_, branches=tuple(b.spec for b in branches),
            student=str(start.output_dir) if start else self.recipe.student, output_dir=directory / "merged",
            candidate=candidate, weights_from={e.spec.teacher: e.marker_path for e in evals} or None,
        )
        config = self.hook.mot_merge_config(recipe=recipe, merge=spec)
        config_path = directory / "merge.yaml"
        if evals:  # written with the teachers' weights; mot writes merge.yaml with the derived ones
            config = {**config, "mot_weights": {"from": "validation",
                                                "evaluations": {t: str(p) for t, p in spec.weights_from.items()}}}
            config_path = directory / "merge.template.yaml"
        return self._add(MergeStep(
            id=step_id, spec=spec, config=config, config_path=config_path,
            log_path=directory / "merge.log", **markers(directory, "merge."),
            fingerprint=fingerprint(config, branches + evals, self.run_dir),
            deps=tuple(s.id for s in branches + evals),
        ))

    def choose(self, round_: int, branches: list[Step], start: Step | None, directory: Path) -> Step:
        """Every merge candidate of the round, each evaluated on the validation split and (for the
        report) on the test set, and the choice among them: the round's student."""
        candidates = []
        for name, _ in self.recipe.merges():
            merged = self.merge(f"round-{round_:02d}/candidate-{name}", round_, branches, start,
                                directory / f"candidate-{name}", candidate=name)
            label = f"round-{round_:02d}-candidate-{name}"
            validation = self.evaluate(label, round_, merged, role="candidate", candidate=name, split="validation")
            self.evaluate(label, round_, merged, role="candidate", candidate=name)
            candidates.append((name, merged, validation))
        spec = ChooseSpec(step_id=f"round-{round_:02d}/choose", round=round_, candidates=tuple(c[0] for c in candidates),
                          branches=tuple(b.spec for b in branches),
                          student=str(start.output_dir) if start else self.recipe.student,
                          output_dir=directory / "merged")
        config = {"rule": "the highest validation accuracy; ties: the candidate listed first",
                  "candidates": [{"name": name, "merged": str(merged.output_dir), "validation": str(v.marker_path)}
                                 for name, merged, v in candidates]}
        read = [step for _, merged, v in candidates for step in (merged, v)]
        return self._add(ChooseStep(
            id=spec.step_id, spec=spec, config=config, config_path=directory / "choose.yaml",
            log_path=directory / "choose.log", **markers(directory, "choose."),
            fingerprint=fingerprint(config, read, self.run_dir), deps=tuple(s.id for s in read), ends_round=True,
        ))

    def evaluate(self, name: str, round_: int, model: Step | None, ends_round: bool = False, *,
                 role: str = "round", teacher: str | None = None, after: tuple[Step, ...] = (),
                 split: str = "test", candidate: str | None = None) -> Step | None:
        """The evaluation of `model` (None: the recipe's student) on the test set or (`split`) the
        validation split, run once the steps `after` finished too; None without that split."""
        settings = self.recipe.mot.eval
        if settings is None or (split == "validation" and not settings.validation):
            return None
        where = "validation/" if split == "validation" else ""
        found = self.find(f"eval/{where}{name}")  # a branch's, for several merges weighted by validation
        if found:
            return found
        directory = self.run_dir / "eval" / f"{where}{name}"
        spec = EvalSpec(step_id=f"eval/{where}{name}", round=round_, name=name, role=role, teacher=teacher,
                        model=str(model.output_dir) if model else self.recipe.student, output_dir=directory / "out",
                        split=split, candidate=candidate)
        config = {"model": spec.model, **settings.model_dump(mode="json", exclude={"branches", "validation", "name"})}
        if split == "validation":
            config["data"] = settings.validation
        if self.recipe.mot.plugins:  # `python -m mot_plugin.evaluate` finds their eval backends
            config["plugins"] = list(self.recipe.mot.plugins)
        return self._add(EvalStep(
            id=spec.step_id, spec=spec, config=config, config_path=directory / "eval.yaml",
            log_path=directory / "eval.log", **markers(directory),
            fingerprint=fingerprint({**config, "mot_contents": [self._content(config["data"])]
                                     + ([] if model else [self._content(spec.model)])}, [model] if model else [],
                                    self.run_dir),
            deps=((model.id,) if model else ()) + tuple(s.id for s in after), ends_round=ends_round,
        ))

    def _content(self, path: str) -> str:
        """A hash of a local file's or directory's contents (a hub id: ''), cached by size and mtime."""
        return self.hashes.datasets([{"path": path}]) if Path(path).is_absolute() else ""

    def _add(self, step: Step) -> Step:
        if self.lineage is not None:
            step = replace(step, baseline=self.lineage)
        self.steps.append(step)
        return step

    def find(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def rounds(self) -> None:
        mot = self.recipe.mot
        validating = self.recipe.validation is not None
        student = None
        self.evaluate("round-00", 0, None)
        self.evaluate("round-00", 0, None, split="validation")
        for r in range(1, mot.rounds + 1):
            round_dir = self.run_dir / f"round-{r:02d}"
            branches = [
                self.branch(f"round-{r:02d}/branch-{t.name}", r, t, student, round_dir / f"branch-{t.name}",
                            mot.steps_per_round, mot.seed + r - 1)
                for t in mot.teachers
            ]
            if mot.merge.candidates:  # the choice ends the round (candidates need a validation split)
                student = self.choose(r, branches, student, round_dir)
                self.branch_evaluations(r, branches)
                continue
            student = self.merge(f"round-{r:02d}/merge", r, branches, student, round_dir)
            if mot.eval is None:
                self.steps[-1] = student = replace(student, ends_round=True)
                continue
            branch_evals = self.branch_evaluations(r, branches)
            # the round's last step waits for its branch evaluations: `mot_round_end` sees them all
            self.evaluate(f"round-{r:02d}", r, student, ends_round=not validating, after=branch_evals)
            self.evaluate(f"round-{r:02d}", r, student, ends_round=True, split="validation")

    def branch_evaluations(self, round_: int, branches: list[Step]) -> tuple[Step, ...]:
        """With `eval.branches`, each branch's evaluation on the test set."""
        if not (self.recipe.mot.eval and self.recipe.mot.eval.branches):
            return ()
        return tuple(self.evaluate(f"round-{round_:02d}-branch-{b.spec.teacher.name}", round_, b, role="branch",
                                   teacher=b.spec.teacher.name) for b in branches)

    def baselines(self) -> None:
        for baseline, settings in collect(self.hook).baselines(self.recipe):
            self.lineage = baseline.name
            try:
                baseline.plan(Lineage(self, baseline.name), settings)
            finally:
                self.lineage = None


class Lineage:
    """What a baseline's `plan(lineage, settings)` gets: it adds the steps of one baseline, each
    marked with the baseline's name (`Step.baseline`). Step ids are `baseline/<name>`, directories
    `baselines/<name>`, evaluations `eval/<name>`; a name already planned (by this or another
    baseline) returns that step, so baselines can share training."""

    def __init__(self, planner: _Planner, baseline: str):
        self._planner, self.baseline = planner, baseline
        self.recipe = planner.recipe

    def branch(self, name: str, teacher: Teacher, max_steps: int, seed: int | None = None) -> Step:
        """A branch trained from the recipe's student on `teacher`'s datasets for `max_steps` steps
        (seed: `mot.seed`); any `Teacher(name=..., datasets=...)` works, for example a mix."""
        step_id = f"baseline/{name}"
        seed = self.recipe.mot.seed if seed is None else seed
        return self._planner.find(step_id) or self._planner.branch(
            step_id, 0, teacher, None, self._planner.run_dir / "baselines" / name, max_steps, seed)

    def merge(self, name: str, branches: list[Step]) -> Step:
        """The merge of `branches` (with the recipe's merge executor and settings; with merge
        candidates, the first candidate's)."""
        step_id = f"baseline/{name}"
        return self._planner.find(step_id) or self._planner.merge(
            step_id, 0, branches, None, self._planner.run_dir / "baselines" / name,
            candidate=self.recipe.merges()[0][0])

    def evaluate(self, name: str, model: Step) -> Step | None:
        """The evaluation of `model` as one of this baseline's results, reported under `name`; None
        when the recipe has no `eval`."""
        return self._planner.evaluate(name, 0, model, role="baseline")


def plan_run(recipe: Recipe, hook: pluggy.HookRelay) -> Plan:
    """Plan the run: evaluation of the student, every round, then the baselines the recipe lists."""
    planner = _Planner(recipe, hook)
    planner.rounds()
    planner.baselines()
    steps = _final_evaluation(planner.steps) if recipe.validation else planner.steps
    return Plan(recipe=recipe, steps=tuple(steps), data_hashes=planner.hashes.used)


def _final_evaluation(steps: list[Step]) -> list[Step]:
    """Every evaluation on the test set moved to the end, after the last round's end (its choice, or
    its validation): no choice can depend on the test set. Their fingerprints do not change."""
    tests = {s.id for s in steps if s.on_test_set}
    rest = [s for s in steps if s.id not in tests]
    gate = next(s for s in reversed(rest) if s.ends_round)
    return rest + [replace(s, deps=(*s.deps, gate.id)) for s in steps if s.id in tests]
