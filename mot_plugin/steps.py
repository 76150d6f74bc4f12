"""What the hooks receive: one branch, merge, evaluation or choice, and a planned step.

Each kind of step is a class (`PrepareStep`, `BranchStep`, `MergeStep`, `EvalStep`, `ChooseStep`)
that knows what it does: the hook that runs it, its result, whether it trains or writes weights,
when its weights may go. The planner, runner, status and report ask the step, never its `kind`
(a name kept for display and JSON).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from mot_plugin.atomic import write_json
from mot_plugin.results import StepResult, parse_result
from mot_plugin.recipe import MotConfig, Teacher

RESULT_FILE = "mot_result.json"
"""Written into a branch's output directory by the in-branch Axolotl plugin."""
PROGRESS_FILE = "mot_progress.json"
"""Written into a branch's output directory while it trains (`{"step": 12, "max_steps": 50}`), by a
TrainerCallback of the in-branch plugin: what `mot status` and `mot run` show of a running branch."""


@dataclass(frozen=True)
class BranchSpec:
    """One SFT branch: a teacher's data (or the union's) trained from a student."""

    step_id: str
    """`round-01/branch-<teacher>`, or `baseline/single-<teacher>`, `baseline/union`, ..."""
    round: int
    """The MoT round; 0 for baselines (their `Step.baseline` names them)."""
    teacher: Teacher
    student: str
    """The model this branch starts from: the recipe's student in round 1, else the last merge."""
    tokenizer: str
    """The round-0 student's tokenizer, pinned so Axolotl's tokenization cache hits every round."""
    output_dir: Path
    """Where the branch's final weights go."""
    prepared_dir: Path
    """This teacher's own Axolotl `dataset_prepared_path` (shared by its branches of all rounds)."""
    max_steps: int
    seed: int
    adapter: str | None = None
    """`lora` or `qlora`: the branch writes an adapter (`adapter_model.safetensors`) for `student`
    into `output_dir`, not full weights; None: a full fine-tune."""


@dataclass(frozen=True)
class MergeSpec:
    """The merge of branches into one model: a round's next student, or the one-shot baseline."""

    step_id: str
    round: int
    branches: tuple[BranchSpec, ...]
    student: str
    """The student the branches started from (mergekit's `base_model` for methods that take one)."""
    output_dir: Path
    candidate: str | None = None
    """The merge candidate this merge is (`Recipe.with_merge` gives its settings); None: the merge."""
    weights_from: dict[str, Path] | None = None
    """`weights: validation`: per teacher, the marker of its branch's validation evaluation, whose
    accuracy sets the branch's weight when the merge runs (`mot_plugin.weights.resolve_weights`)."""


@dataclass(frozen=True)
class ChooseSpec:
    """The choice among a round's merge candidates: the one with the highest validation accuracy
    becomes the round's student."""

    step_id: str
    round: int
    candidates: tuple[str, ...]
    """The candidates' names, in the order written (ties go to the first)."""
    branches: tuple[BranchSpec, ...]
    """The round's branches, which every candidate merges."""
    student: str
    """The student the round's branches started from."""
    output_dir: Path
    """The round's student: the chosen candidate's files, hard-linked (`round-NN/merged`)."""


@dataclass(frozen=True)
class EvalSpec:
    """The evaluation of one model on the recipe's held-out problems."""

    step_id: str
    round: int
    """The MoT round whose student is evaluated (0: the recipe's student); 0 for baselines too."""
    name: str
    """`round-00`, `round-01`, ..., `round-01-branch-<teacher>`, `round-01-candidate-<name>`, or a
    baseline's name (`single-<teacher>`, `union`, `oneshot`)."""
    model: str
    output_dir: Path
    """Where the evaluation's samples go (`samples.jsonl`, `metrics.json`)."""
    role: Literal["round", "branch", "baseline", "candidate"] = "round"
    """What is evaluated: a round's student (round 0: the recipe's), one MoT branch, a baseline, or
    one of a round's merge candidates."""
    teacher: str | None = None
    """The teacher of the evaluated branch (role `branch`)."""
    split: Literal["test", "validation"] = "test"
    """The problems: `mot.eval.data` (test) or `mot.eval.validation`."""
    candidate: str | None = None
    """The evaluated merge candidate's name (role `candidate`)."""


@dataclass(frozen=True)
class PrepareSpec:
    """Tokenizing one teacher's data before branches run in parallel (Axolotl `preprocess`)."""

    step_id: str
    """`prepare/<teacher>`."""
    round: int
    """The round of the first branch that reads this data (0: a baseline)."""
    teacher: Teacher
    output_dir: Path
    """The teacher's prepared-data directory, named after its files' content hash."""


def markers(directory: Path, prefix: str = "") -> dict[str, Path]:
    """A step's state files in `directory`: `<prefix>done.json`, `<prefix>failed.json`, `<prefix>where.json`
    (the keyword arguments `Step` takes for them)."""
    return {"marker_path": directory / f"{prefix}done.json", "failed_path": directory / f"{prefix}failed.json",
            "where_path": directory / f"{prefix}where.json"}


@dataclass(frozen=True, kw_only=True)
class Step:
    """A unit of work with the exact config file it needs and where its results go."""

    id: str
    kind: str
    """`prepare`, `branch`, `merge`, `eval` or `choose`: the name of its class, for display and JSON."""
    spec: PrepareSpec | BranchSpec | MergeSpec | EvalSpec | ChooseSpec
    config: dict[str, Any]
    config_path: Path
    log_path: Path
    marker_path: Path
    """Written last and atomically when the step has finished; holds its fingerprint and result."""
    failed_path: Path
    """Written when the step's last attempt failed: its fingerprint and the error."""
    where_path: Path
    """Where the step runs (host, devices, job id), as its launcher recorded it."""
    fingerprint: str
    """Hash of the config and of the steps it depends on: a changed value means run again."""
    deps: tuple[str, ...] = ()
    """Steps that must finish before this one starts."""
    ends_round: bool = False
    """The last step of a MoT round: `mot_round_end` is called after it."""
    baseline: str | None = None
    """The lineage: the registered baseline whose step this is; None for the MoT lineage (its round
    0 is the recipe's student, rounds 1.. the merged students)."""

    hook: ClassVar[str | None] = None
    """The hook that runs it."""
    trains: ClassVar[bool] = False
    """Trains a model with Axolotl (a branch): optimizer steps, a launcher, a branch config."""
    merges: ClassVar[bool] = False
    """Merges the models it reads into one."""
    checkpoint: ClassVar[bool] = False
    """Writes a model's weights (a branch: its checkpoint or adapter; a merge)."""
    read_later: ClassVar[bool] = True
    """Later steps read its output: a done step whose output is gone runs again."""
    diagnosed: ClassVar[bool] = False
    """Its diagnostics are computed when it finishes (`diagnostics.json` beside its config)."""
    concurrent: ClassVar[bool] = True
    """Runs alongside the steps of its round and kind (`mot.launch.parallel` at once), not one at a time."""
    pruned_by: ClassVar[str | None] = None
    """What its weights are deleted after, once used (`mot status`)."""

    @property
    def round(self) -> int:
        return self.spec.round

    @property
    def output_dir(self) -> Path:
        return self.spec.output_dir

    @property
    def eta_group(self) -> tuple[bool, int, str, bool]:
        """The steps whose times estimate each other's and that run together: its lineage (MoT or a
        baseline), round and kind, and whether they run concurrently."""
        return self.baseline is not None, self.round, self.kind, self.concurrent

    @property
    def optimizer_steps(self) -> int:
        """The optimizer steps it trains (0 unless it trains)."""
        return 0

    @property
    def makes_student(self) -> bool:
        """It makes a MoT round's student (the round's merge, or its choice among candidates)."""
        return False

    @property
    def keeps_model(self) -> bool:
        """Reading a model makes that model a result of its own (an evaluation of a round or a baseline)."""
        return False

    @property
    def on_test_set(self) -> bool:
        """An evaluation on the test set: it runs after every choice (with a validation split)."""
        return False

    @property
    def progress_file(self) -> Path | None:
        """Where it records how far it got (a branch's trainer); None: its log's progress bar says."""
        return None

    def prunable(self, readers: list[Step], mot: MotConfig) -> bool:
        """Its weights may be deleted once `readers` (the steps that read them) have finished."""
        return False

    def checkpoint_bytes(self, student_bytes: int, branch_bytes: int) -> int:
        """Bytes of the weights it writes (`branch_bytes`: a branch's checkpoint or adapter)."""
        return 0

    def scratch_bytes(self, copy_bytes: int) -> int:
        """Bytes it holds on disk while it runs besides its output (`copy_bytes` per model it merges)."""
        return 0

    def run(self, relay: Any, recipe: Any) -> Any:
        """Run it through its hook (`relay`: the plugins' hook relay); None when no plugin ran it."""
        return getattr(relay, self.hook)(recipe=recipe, step=self) if self.hook else None

    def result(self, value: StepResult | dict[str, Any], where: str) -> StepResult:
        """`value` (its hook's return, or the result in its marker) as its result model."""
        return parse_result(self.kind, value, where)

    def record_where(self, **where: Any) -> None:
        """For launchers: record where the step runs, for `mot status`."""
        write_json(self.where_path, where)


@dataclass(frozen=True, kw_only=True)
class PrepareStep(Step):
    """Tokenizes one teacher's data before branches run in parallel."""

    kind: str = field(default="prepare", init=False)
    spec: PrepareSpec
    hook: ClassVar[str] = "mot_prepare_data"


@dataclass(frozen=True, kw_only=True)
class BranchStep(Step):
    """Trains one SFT branch."""

    kind: str = field(default="branch", init=False)
    spec: BranchSpec
    hook: ClassVar[str] = "mot_run_branch"
    trains: ClassVar[bool] = True
    checkpoint: ClassVar[bool] = True
    pruned_by: ClassVar[str] = "merge"

    @property
    def optimizer_steps(self) -> int:
        return self.spec.max_steps

    @property
    def progress_file(self) -> Path:
        return self.output_dir / PROGRESS_FILE

    def prunable(self, readers: list[Step], mot: MotConfig) -> bool:
        """Weights that feed a merge and are no lineage's result (evaluating a branch alone does not
        keep it), unless the recipe sets `keep_branches`."""
        return (not mot.keep_branches and any(r.merges for r in readers)
                and not any(r.keeps_model for r in readers))

    def checkpoint_bytes(self, student_bytes: int, branch_bytes: int) -> int:
        return branch_bytes


@dataclass(frozen=True, kw_only=True)
class MergeStep(Step):
    """Merges branches into one model."""

    kind: str = field(default="merge", init=False)
    spec: MergeSpec
    hook: ClassVar[str] = "mot_run_merge"
    merges: ClassVar[bool] = True
    checkpoint: ClassVar[bool] = True
    diagnosed: ClassVar[bool] = True
    concurrent: ClassVar[bool] = False
    pruned_by: ClassVar[str] = "the choice"

    @property
    def makes_student(self) -> bool:
        return self.baseline is None and self.spec.candidate is None

    def prunable(self, readers: list[Step], mot: MotConfig) -> bool:
        """A MoT merge candidate, unless the recipe sets `merge.keep_candidates`."""
        return self.baseline is None and self.spec.candidate is not None and not mot.merge.keep_candidates

    def checkpoint_bytes(self, student_bytes: int, branch_bytes: int) -> int:
        return student_bytes

    def scratch_bytes(self, copy_bytes: int) -> int:
        return copy_bytes * len(self.spec.branches)


@dataclass(frozen=True, kw_only=True)
class EvalStep(Step):
    """Evaluates one model on the test set or the validation split."""

    kind: str = field(default="eval", init=False)
    spec: EvalSpec
    hook: ClassVar[str] = "mot_evaluate"
    read_later: ClassVar[bool] = False

    @property
    def keeps_model(self) -> bool:
        return self.spec.role != "branch"

    @property
    def on_test_set(self) -> bool:
        return self.spec.split == "test"


@dataclass(frozen=True, kw_only=True)
class ChooseStep(Step):
    """Chooses a round's student among its merge candidates."""

    kind: str = field(default="choose", init=False)
    spec: ChooseSpec
    hook: ClassVar[str] = "mot_choose"

    @property
    def makes_student(self) -> bool:
        return self.baseline is None
