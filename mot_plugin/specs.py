"""What the hooks receive: one branch or one merge of one round, and a planned step."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mot_plugin.recipe import Teacher

RESULT_FILE = "mot_result.json"
"""Written into a branch's output directory by the in-branch Axolotl plugin."""


@dataclass(frozen=True)
class BranchSpec:
    """One teacher's SFT branch in one round, starting from that round's student."""

    round: int
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

    @property
    def step_id(self) -> str:
        return f"round-{self.round:02d}/branch-{self.teacher.name}"


@dataclass(frozen=True)
class MergeSpec:
    """The merge of one round's branches into the next round's student."""

    round: int
    branches: tuple[BranchSpec, ...]
    student: str
    """The round's student (mergekit's `base_model` for methods that take one)."""
    output_dir: Path

    @property
    def step_id(self) -> str:
        return f"round-{self.round:02d}/merge"


@dataclass(frozen=True)
class Step:
    """A unit of work with the exact config file it needs and where its results go."""

    id: str
    kind: Literal["branch", "merge"]
    spec: BranchSpec | MergeSpec
    config: dict[str, Any]
    config_path: Path
    log_path: Path
    marker_path: Path
    """Written last and atomically when the step has finished; holds its fingerprint and result."""
    fingerprint: str
    """Hash of the config and of the steps it depends on: a changed value means run again."""
    deps: tuple[str, ...] = field(default=())

    @property
    def round(self) -> int:
        return self.spec.round

    @property
    def output_dir(self) -> Path:
        return self.spec.output_dir

    @property
    def failed_path(self) -> Path:
        return self.marker_path.with_name(self.marker_path.name.replace("done", "failed"))
