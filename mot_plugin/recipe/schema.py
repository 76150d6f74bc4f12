"""The recipe's schema: the pydantic models of the `mot:` block, the keys mot sets itself, the dtypes.

Light on purpose: no torch, axolotl or mergekit imports.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from mot_plugin.builtin import DEFAULT_EVAL_BACKEND, DEFAULT_LAUNCHER, DEFAULT_MERGE_EXECUTOR, MOVED_LAUNCH_KEYS
from mot_plugin.errors import UserError
from mot_plugin.fields import SIZE, Line, Module, Name
from mot_plugin.hub_ids import check_repo_id, license_id


class RecipeError(UserError):
    """Bad input: a one-line message naming the key, file or line at fault."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Section(BaseModel):
    """A section whose other keys are blocks of registered entries (`launch.ray`, `merge.<executor>`,
    `eval.<backend>`): validated by the entry's own settings model (`mot_plugin.registry`)."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)


DTYPES = Literal["float32", "float16", "bfloat16", "float64"]
"""The dtypes mergekit computes and saves in."""
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+")
"""What a Hugging Face hub id looks like (`org/name`); other relative paths must exist."""
DATASET_SUFFIXES = (".json", ".jsonl", ".parquet", ".arrow", ".csv", ".txt")
"""Local dataset files Axolotl loads by their extension."""


# Keys the planner writes into every branch config whose recipe value would be ambiguous: refused.
# (Keys mot replaces with a note, such as `output_dir` and `num_epochs`: mot_plugin.axolotl_config.)
PLANNER_KEYS = {
    "base_model": "the round's student",
    "max_steps": "mot.steps_per_round",
    "datasets": "mot.teachers[].datasets",
    "seed": "mot.seed",
}
# Keys every teacher shares: a round's branches must be of one kind to be merged.
SHARED_ONLY_KEYS = ("tokenizer_config", "adapter", "lora_model_dir")
ADAPTERS = ("lora", "qlora")
"""Axolotl `adapter` values mot merges (through mergekit's `student+adapter` model references)."""


class Teacher(_Strict):
    """One teacher: its chain-of-thought corpus becomes one SFT branch per round."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Unique short name; used in directory names (`branch-<name>`)."""
    datasets: list[dict[str, Any]] = Field(min_length=1)
    """Axolotl `datasets` entries for this teacher (for example `type: chat_template`)."""
    overrides: dict[str, Any] = {}
    """Axolotl keys that replace the shared ones for this teacher's branches only."""
    weight: float = Field(default=1.0, allow_inf_nan=False)
    """This teacher's merge weight (mergekit `weight`; linear averaging normalizes the weights)."""
    merge_parameters: dict[str, Any] = {}
    """Other per-model mergekit parameters for this teacher's branch (for example `density`)."""

    @field_validator("overrides")
    @classmethod
    def _no_planner_keys(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        for key in overrides:
            if key in PLANNER_KEYS or key in SHARED_ONLY_KEYS:
                raise ValueError(f"{key!r} cannot be overridden per teacher (set by {PLANNER_KEYS.get(key, 'the recipe, for all teachers')})")
        return overrides


class _MergeSettings(_Section):
    """The settings of one merge (the `merge:` block, and each of its candidates). Other keys: the
    settings block of a registered merge executor (`merge.<executor>`)."""

    executor: Name = DEFAULT_MERGE_EXECUTOR
    """The registered merge executor that runs the merges; it reads the fields below."""
    method: str = "linear"
    """A mergekit `merge_method` name; checked against mergekit's registry."""
    parameters: dict[str, Any] = {}
    """Global mergekit parameters of the method (for example `normalize`, `lambda`, `t`)."""
    dtype: DTYPES = "float32"
    """The dtype mergekit computes in."""
    out_dtype: DTYPES | None = None
    """The dtype of the merged weights (default: the merge executor's; docs/recipe.md)."""
    base_model: Literal["auto", "student", "none"] = "auto"
    """`student`: the round's student is mergekit's `base_model` (task_arithmetic, ties, ...);
    `none`: no base model (linear); `auto`: whatever the method requires."""
    weights: Literal["teachers", "validation"] = "teachers"
    """Each branch's merge weight: `teachers`, its teacher's `weight`; `validation`, its teacher's
    weight times its accuracy on `mot.eval.validation`, rescaled to the same total."""


class Candidate(_MergeSettings):
    """One merge candidate: the `merge:` block with the keys the candidate sets replaced."""

    name: Name | None = None
    """Names the candidate's directory (`round-NN/candidate-<name>`) and report rows; default: its method."""


class Merge(_MergeSettings):
    """How each round's branch students are merged (any mergekit method), or the candidate merges
    one of which each round continues with, chosen on the validation split."""

    candidates: list[Candidate] = []
    """Merges to try each round; the one with the highest validation accuracy continues (ties: the
    first listed). Each is the `merge:` block with the keys it sets replaced. One alone is the merge."""
    keep_candidates: bool = False
    """Keep every candidate's weights; by default a candidate's are deleted once it is chosen or
    not and its test evaluation has read them."""

    def choices(self) -> list[tuple[str, "Merge"]]:
        """Each candidate's name and its merge settings (this block with the candidate's keys replaced)."""
        base = self.model_dump(exclude={"candidates", "keep_candidates"})
        found = []
        for candidate in self.candidates:
            merge = Merge.model_validate({**base, **candidate.model_dump(exclude_unset=True, exclude={"name"})})
            found.append((candidate.name or merge.method, merge))
        return found


class Eval(_Section):
    """Evaluation of every round's student (and each baseline) on held-out problems. Other keys: the
    settings block of a registered eval backend (`eval.<backend>`)."""

    data: str
    """JSONL of held-out problems: `prompt` and gold `answer` per row."""
    validation: str | None = None
    """JSONL of validation problems (the format of `data`, no prompt in common with it): what every
    choice is made on (merge candidates, `mot.select`); `data` is then read only by the run's final
    evaluation."""
    samples: int = Field(default=1, ge=1)
    """Samples per problem: 1 is greedy decoding; more samples at `temperature`, averaged."""
    temperature: float = Field(default=0.7, gt=0)
    """Sampling temperature when `samples` > 1."""
    max_new_tokens: int = Field(default=256, ge=1)
    """Longest response generated."""
    batch_size: int = Field(default=16, ge=1)
    """Prompts generated at once."""
    limit: int | None = Field(default=None, ge=1)
    """Evaluate only the first `limit` problems."""
    backend: Name = DEFAULT_EVAL_BACKEND
    """A registered eval backend: `transformers` (tested here, CPU or GPU), `vllm` (when installed),
    or a plugin's."""
    name: Line | None = None
    """How the model cards name the evaluation set (default: the file's name without its extension)."""
    branches: bool = False
    """Also evaluate every MoT round's branches (before their weights are deleted), so the report
    can show each merge's gain over its branches."""


class Launch(_Section):
    """Where and how branches run. Other keys: the settings block of a registered launcher
    (`launch.ray`, `launch.slurm`, `launch.<plugin launcher>`)."""

    launcher: Name = DEFAULT_LAUNCHER
    """A registered launcher: `local`, this machine; `ray`, Ray tasks; `slurm`, one Slurm job per
    branch; or a plugin's."""
    parallel: int = Field(default=1, ge=1)
    """How many steps run at once (a round's branches are independent). Above 1, every teacher's data
    is tokenized first, so concurrent branches never share Axolotl's prepared-data locks."""
    processes: int = Field(default=1, ge=1)
    """Processes per branch; above 1 the branch runs under `accelerate launch` (DeepSpeed/FSDP
    settings of the recipe pass through unchanged)."""
    executor: Literal["warm", "cold"] = "warm"
    """How steps run on this machine (local branches, data preparation, merges, evaluations):
    `warm`, each in a fork of one Python server that imported torch, Axolotl and mergekit once;
    `cold`, each as a new Python process. Same commands, logs and results (docs/recipe.md)."""
    port: int = Field(default=29500, ge=1024, le=65000)
    """First rendezvous port; concurrent multi-process branches get distinct ports from here."""

    _moved: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _old_places(cls, data: Any, handler: Any) -> "Launch":
        """A key written in its old place (`launch.devices`) is read into its launcher's block
        (`launch.local.devices`); both places at once are refused."""
        moved = []
        if isinstance(data, dict):
            data = dict(data)
            for key, block in MOVED_LAUNCH_KEYS.items():
                if key in data:
                    settings = data.get(block) if isinstance(data.get(block), dict) else {}
                    if key in settings:
                        raise ValueError(f"launch.{key}: moved to launch.{block}.{key}; set it there only")
                    data[block] = {**settings, key: data.pop(key)}
                    moved.append(key)
        launch = handler(data)
        launch._moved = tuple(moved)
        return launch

    @property
    def moved(self) -> tuple[str, ...]:
        """The keys this recipe wrote in their old place (`devices`)."""
        return self._moved

    def moved_notes(self) -> list[str]:
        """A note for each key written in its old place."""
        return [f"mot.launch.{key}: read as mot.launch.{MOVED_LAUNCH_KEYS[key]}.{key}, its place now; write it there"
                for key in self._moved]


class MotConfig(_Strict):
    """The `mot:` block."""

    teachers: list[Teacher] = Field(min_length=2)
    """At least two teachers, each with its own datasets."""
    rounds: int = Field(ge=1)
    """How many branch-then-merge rounds to run (the paper: 5)."""
    steps_per_round: int = Field(ge=1)
    """Optimizer steps of every branch in every round (Axolotl `max_steps`; the paper: 50)."""
    merge: Merge = Merge()
    """The merge of each round's branches."""
    run_dir: Line = Field(default="runs/mot", min_length=1)
    """Where the run lives (relative paths are relative to the working directory)."""
    seed: int = 42
    """Base seed; round r's branches train with `seed + r - 1` (`mot run --seed N` sets it per run)."""
    plugins: list[Module] = []
    """Python modules to load as MoT plugins for this recipe (besides installed entry points)."""
    eval: Eval | None = None
    """Evaluate the round-0 student, every round's student and every baseline."""
    baselines: list[Name | dict[Name, Any]] = []
    """Registered baselines by name, or as `{name: settings}`: `single`, SFT on each teacher alone
    (STD); `union`, SFT on all teachers' data (MTD); `oneshot`, each teacher's branch trained for the
    whole budget, merged once; or a plugin's."""
    baseline_budget: Literal["sequential", "compute"] = "sequential"
    """`sequential`: every baseline lineage trains rounds x steps_per_round steps, like one MoT lineage;
    `compute`: single and union train as many steps as all MoT branches together."""
    launch: Launch = Launch()
    """Where branches run, and how many at once."""
    keep_branches: bool = False
    """Keep every branch's weights; by default a branch's weights are deleted once every step that
    reads them (its merge, its evaluation) has finished."""
    select: Literal["last", "validation"] = "last"
    """The run's final model: the last round's student, or (`validation`) the round's student with
    the highest accuracy on `mot.eval.validation` (ties: the earlier round)."""
    shard_size: Annotated[str, Field(pattern=SIZE)] | Annotated[int, Field(ge=1)] = "5GB"
    """Largest safetensors file of a branch's or a merge's weights (`5GB`, `500MB`, `2GiB` or bytes);
    bigger checkpoints are written as several shards and an index."""
    published: Line | None = None
    """The input hashes of the shared run this recipe was started from (`mot init --from` writes
    `NAME.published.json`): `mot plan` and `mot run` compare every input with them."""
    student_hub_id: str | None = None
    """The hub id a local student was made from: the model cards' `base_model` (a hub `base_model`
    needs none)."""
    license: str | None = None
    """The license of the models mot writes (their cards' `license`): a hub license id or an SPDX id;
    default: the student's (its card's, or what `mot student-from-gguf` recorded)."""

    @field_validator("student_hub_id")
    @classmethod
    def _repo_id(cls, value: str | None) -> str | None:
        return None if value is None else check_repo_id(value)

    @field_validator("license")
    @classmethod
    def _license(cls, value: str | None) -> str | None:
        return None if value is None else license_id(value)

    @field_validator("teachers")
    @classmethod
    def _unique_teachers(cls, teachers: list[Teacher]) -> list[Teacher]:
        names = [t.name for t in teachers]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"teacher name {name!r} is used twice")
        total = sum(t.weight for t in teachers)
        if total <= 0:
            raise ValueError(f"the teachers' weights sum to {total:g}; the sum must be positive")
        return teachers

    @field_validator("baselines")
    @classmethod
    def _one_baseline_each(cls, baselines: list) -> list:
        names = []
        for item in baselines:
            if isinstance(item, dict) and len(item) != 1:
                raise ValueError(f"a baseline with settings is one mapping {{name: settings}}, not {item!r}")
            names.append(item if isinstance(item, str) else next(iter(item)))
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"baseline {name!r} is listed twice")
        return baselines

