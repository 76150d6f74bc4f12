"""The recipe: an Axolotl YAML whose keys every branch shares, plus a strict `mot:` block.

Light on purpose: no torch, axolotl or mergekit imports. `load_recipe` validates the schema and
the inputs it names (dataset files, the student) and raises `RecipeError` with a one-line message
that names the file, key or line at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mot_plugin.errors import CONTROL, UserError, load_yaml
from mot_plugin.hub import check_repo_id, license_id
from mot_plugin.jsonl import read_jsonl


class RecipeError(UserError):
    """Bad input: a one-line message naming the key, file or line at fault."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Section(BaseModel):
    """A section whose other keys are blocks of registered entries (`launch.ray`, `merge.<executor>`,
    `eval.<backend>`): validated by the entry's own settings model (`mot_plugin.registry`)."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)


LINE = r"^[^\x00-\x1f\x7f]*$"
MODULE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
Line = Annotated[str, Field(pattern=LINE)]
"""A string without control characters (no newline can break out of a script or a comment line)."""
Module = Annotated[str, Field(pattern=MODULE)]
"""A Python module name (`pkg.module`)."""
SIZE = r"^\d+ ?([KMG]i?B)?$"
"""A size in bytes, as transformers' `max_shard_size` reads it: `5GB` (10^9), `2GiB` (2^30), `1000`."""
NAME = r"^[A-Za-z][A-Za-z0-9_-]*$"
Name = Annotated[str, Field(pattern=NAME)]
"""The name of a registered launcher, merge executor, baseline or eval backend."""
PATTERN_MESSAGES = {LINE: "holds a newline or another control character", MODULE: "not a Python module name",
                    SIZE: "not a size such as 5GB, 500MB, 2GiB or a number of bytes",
                    NAME: "not a name (letters, digits, _ and -)"}
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

    executor: Name = "mergekit"
    """The registered merge executor that runs the merges; it reads the fields below."""
    method: str = "linear"
    """A mergekit `merge_method` name; checked against mergekit's registry."""
    parameters: dict[str, Any] = {}
    """Global mergekit parameters of the method (for example `normalize`, `lambda`, `t`)."""
    dtype: DTYPES = "float32"
    """The dtype mergekit computes in."""
    out_dtype: DTYPES | None = None
    """The dtype of the merged weights (default: the dtype the branches train in, `bf16: true` ->
    `bfloat16`, `fp16: true` -> `float16`; else `dtype`)."""
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
    backend: Name = "transformers"
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

    launcher: Name = "local"
    """A registered launcher: `local`, this machine; `ray`, Ray tasks; `slurm`, one Slurm job per
    branch; or a plugin's."""
    parallel: int = Field(default=1, ge=1)
    """How many steps run at once (a round's branches are independent). Above 1, every teacher's data
    is tokenized first, so concurrent branches never share Axolotl's prepared-data locks."""
    devices: list[Line] = []
    """Local: `CUDA_VISIBLE_DEVICES` for each concurrent branch (for example `["0,1", "2,3"]`);
    at least `parallel` groups when set, each with at least `processes` devices."""
    processes: int = Field(default=1, ge=1)
    """Processes per branch; above 1 the branch runs under `accelerate launch` (DeepSpeed/FSDP
    settings of the recipe pass through unchanged)."""
    executor: Literal["warm", "cold"] = "warm"
    """How steps run on this machine (local branches, data preparation, merges, evaluations):
    `warm`, each in a fork of one Python server that imported torch, Axolotl and mergekit once;
    `cold`, each as a new Python process. Same commands, logs and results (docs/recipe.md)."""
    port: int = Field(default=29500, ge=1024, le=65000)
    """First rendezvous port; concurrent multi-process branches get distinct ports from here."""


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

    @model_validator(mode="after")
    def _enough_devices(self) -> "MotConfig":
        devices = self.launch.devices
        if devices and len(devices) < self.launch.parallel:
            raise ValueError(f"launch.devices: {len(devices)} device groups for launch.parallel "
                             f"{self.launch.parallel}; give one group per concurrent branch")
        for number, group in enumerate(devices):
            if len(group.split(",")) < self.launch.processes:
                raise ValueError(f"launch.devices: group {number} ({group!r}) has fewer devices than "
                                 f"launch.processes {self.launch.processes}")
        return self


@dataclass(frozen=True)
class Recipe:
    """A validated recipe: the shared Axolotl keys and the `mot:` block, paths made absolute."""

    axolotl: dict[str, Any]
    mot: MotConfig
    source: str = "<recipe>"

    @property
    def student(self) -> str:
        """The round-0 student (the recipe's `base_model`)."""
        return self.axolotl["base_model"]

    @property
    def run_dir(self) -> Path:
        return Path(self.mot.run_dir)

    @property
    def adapter(self) -> str | None:
        """`lora` or `qlora` when branches train adapters (Axolotl `adapter`); None for full fine-tunes."""
        return self.axolotl.get("adapter") or None

    @property
    def train_dtype(self) -> str | None:
        """The dtype branches train and save in when the recipe says so (`bf16: true` -> `bfloat16`,
        `fp16: true` -> `float16`, both false -> `float32`); None when Axolotl picks (`bf16: auto`)."""
        bf16, fp16 = self.axolotl.get("bf16"), self.axolotl.get("fp16")
        if bf16 is True or self.axolotl.get("bfloat16") is True:
            return "bfloat16"
        if fp16 is True or self.axolotl.get("float16") is True:
            return "float16"
        return "float32" if bf16 is False and not fp16 else None

    @property
    def validation(self) -> str | None:
        """The validation file (`mot.eval.validation`), or None."""
        return self.mot.eval.validation if self.mot.eval else None

    def merges(self) -> list[tuple[str | None, Merge]]:
        """The merges of each round: every candidate's name and settings, or (no candidates) the
        `merge:` block alone, named None."""
        return self.mot.merge.choices() or [(None, self.mot.merge)]

    def with_merge(self, candidate: str | None) -> "Recipe":
        """The recipe whose `mot.merge` is candidate `candidate`'s merge settings (None: this recipe):
        what a merge executor reads for that candidate's merges."""
        if candidate is None:
            return self
        merge = dict(self.merges())[candidate]
        return replace(self, mot=self.mot.model_copy(update={"merge": merge}))

    @property
    def shard_bytes(self) -> int:
        """`mot.shard_size` in bytes."""
        return size_bytes(self.mot.shard_size)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as YAML-ready data (what `recipe.yaml` in the run directory holds)."""
        return {**self.axolotl, "mot": self.mot.model_dump(mode="json")}


def size_bytes(size: str | int) -> int:
    """`5GB` -> 5 * 10**9, `2GiB` -> 2 * 2**30, `1000` -> 1000 (see `SIZE`)."""
    if isinstance(size, int):
        return size
    number, unit = re.fullmatch(r"(\d+) ?([KMG]i?B)?", size).groups()
    if not unit:
        return int(number)
    return int(number) * (1024 if "i" in unit else 1000) ** ("KMG".index(unit[0]) + 1)


SEED_DIR = "seed-{}"
"""A seed's run directory under `mot.run_dir` when `mot run --seed N` runs several seeds."""


def with_seed(recipe: Recipe, seed: int) -> Recipe:
    """The recipe of one of several seeds: `mot.seed` is `seed`, the run lives in `<run_dir>/seed-<seed>`."""
    run_dir = recipe.run_dir / SEED_DIR.format(seed)
    return replace(recipe, mot=recipe.mot.model_copy(update={"seed": seed, "run_dir": str(run_dir)}))


def seed_run_dirs(run_dir: Path) -> list[Path]:
    """The seed run directories (`seed-N` holding a `recipe.yaml`) under `run_dir`, by seed."""
    found = {}
    for path in run_dir.glob(SEED_DIR.format("*")):
        match = re.fullmatch(SEED_DIR.format(r"(-?\d+)"), path.name)
        if match and (path / "recipe.yaml").is_file():
            found[int(match.group(1))] = path
    return [found[seed] for seed in sorted(found)]


def load_recipe(path: str | Path, *, check_files: bool = True) -> Recipe:
    """Read, validate and resolve the recipe at `path`."""
    path = Path(path)
    if not path.exists():
        raise RecipeError(f"{path}: no such recipe file")
    data = load_yaml(path, RecipeError)
    recipe = parse_recipe(data, source=str(path))
    if check_files:
        check_inputs(recipe)
    return recipe


def parse_recipe(data: Any, *, source: str = "<recipe>") -> Recipe:
    """Validate recipe data (a mapping) and make its local paths absolute."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping")
    shared = {k: v for k, v in data.items() if k != "mot"}
    if "mot" not in data:
        raise RecipeError(f"{source}: missing the `mot:` block")
    if not shared.get("base_model"):
        raise RecipeError(f"{source}: base_model: required (the round-0 student)")
    for key in ("base_model", "tokenizer_config", "lora_model_dir"):
        value = shared.get(key)
        if value is not None and (not isinstance(value, str) or CONTROL.search(value)):
            raise RecipeError(f"{source}: {key}: must be one path or hub id (a string on one line), not {value!r}")
    plugins = shared.get("plugins")
    if plugins is not None and (not isinstance(plugins, list) or not all(isinstance(p, str) and p for p in plugins)):
        raise RecipeError(f"{source}: plugins: must be a list of Axolotl plugin class names, not {plugins!r}")
    for key, owner in PLANNER_KEYS.items():
        if key != "base_model" and key in shared:
            raise RecipeError(f"{source}: {key}: set per branch by mot ({owner}); remove it")
    if shared.get("adapter") and shared["adapter"] not in ADAPTERS:
        raise RecipeError(f"{source}: adapter: mot merges {' and '.join(ADAPTERS)} adapters, not {shared['adapter']!r}")
    try:
        mot = MotConfig.model_validate(data["mot"])
    except ValidationError as err:
        raise RecipeError(f"{source}: {validation_message(err, 'mot')}") from None
    for key in ("base_model", "tokenizer_config", "lora_model_dir"):
        if shared.get(key):
            shared[key] = _local_or_hub(shared[key], f"{source}: {key}")
    teachers = [
        t.model_copy(update={"datasets": [_resolve_dataset(d, f"{source}: mot.teachers.{i}.datasets.{j}")
                                          for j, d in enumerate(t.datasets)]})
        for i, t in enumerate(mot.teachers)
    ]
    update = {"teachers": teachers, "run_dir": str(_run_dir(mot.run_dir, f"{source}: mot.run_dir"))}
    if mot.eval:
        update["eval"] = mot.eval.model_copy(update={
            key: str(Path(path).expanduser().absolute())
            for key, path in (("data", mot.eval.data), ("validation", mot.eval.validation)) if path})
    if mot.published:
        update["published"] = str(Path(mot.published).expanduser().absolute())
    if len(mot.merge.candidates) == 1:  # one candidate is the merge
        update["merge"] = mot.merge.choices()[0][1]
    elif mot.merge.candidates:  # each candidate written out in full, as it merges
        update["merge"] = mot.merge.model_copy(update={"candidates": [
            Candidate.model_validate({**merge.model_dump(exclude={"candidates", "keep_candidates"}), "name": name})
            for name, merge in mot.merge.choices()]})
    mot = mot.model_copy(update=update)
    _check_choices(mot, source)
    return Recipe(axolotl=shared, mot=mot, source=source)


def _check_choices(mot: MotConfig, source: str) -> None:
    """Candidates with distinct names and settings; every choice on validation has a validation file."""
    choices = mot.merge.choices()
    for i, (name, merge) in enumerate(choices):
        key = f"{source}: mot.merge.candidates.{i}"
        taken = [j for j, (other, _) in enumerate(choices[:i]) if other == name]
        if taken:
            raise RecipeError(f"{key}: the name {name!r} is taken by mot.merge.candidates.{taken[0]}; give each "
                              f"candidate its own `name`")
        same = [j for j, (_, other) in enumerate(choices[:i]) if other == merge]
        if same:
            raise RecipeError(f"{key}: the same merge as mot.merge.candidates.{same[0]}")
    if mot.eval and mot.eval.validation:
        return
    needs = [("mot.merge.candidates", "choosing among merge candidates")] if choices else []
    needs += [("mot.select", "select: validation")] if mot.select == "validation" else []
    needs += [(f"mot.merge.candidates.{i}.weights" if choices else "mot.merge.weights", "weights: validation")
              for i, (_, merge) in enumerate(choices or [(None, mot.merge)]) if merge.weights == "validation"]
    if needs:
        key, what = needs[0]
        raise RecipeError(f"{source}: {key}: {what} needs a validation split (mot.eval.validation)")


def validation_message(err: ValidationError, prefix: str) -> str:
    """pydantic's first error as one line, `<prefix>.<key>: <what is wrong>`."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in (prefix, *first["loc"]))
    msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
    if first["type"] == "string_pattern_mismatch":
        msg = f"{PATTERN_MESSAGES.get(first['ctx']['pattern'], msg)}: {first['input']!r}"
    return f"{loc}: {msg}"


def _looks_local(value: str) -> bool:
    """A path rather than a hub id: explicit (`./`, `/`, `~`), existing, or deeper than `org/name`."""
    return value.startswith((".", "/", "~")) or Path(value).exists() or value.count("/") > 1


def _local_or_hub(value: str, where: str, suffixes: tuple[str, ...] = ()) -> str:
    """Absolute path for a local path (`~` expanded); a hub id (`org/name`) is kept as it is; any
    other relative path that does not exist (a typo) is refused."""
    if _looks_local(value) or value.endswith(suffixes):
        return str(Path(value).expanduser().absolute())
    if not HUB_ID.fullmatch(value):
        raise RecipeError(f"{where}: {value} is neither an existing path nor a hub id (org/name); "
                          f"write ./{value} for a local path that does not exist yet")
    return value


def _resolve_dataset(entry: Any, where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise RecipeError(f"{where}: must be a mapping (an Axolotl datasets entry), not {entry!r}")
    path = entry.get("path")
    if path is None:
        return dict(entry)
    if not isinstance(path, str) or not path or CONTROL.search(path):
        raise RecipeError(f"{where}.path: must be one path or hub id (a string on one line), not {path!r}")
    return {**entry, "path": _local_or_hub(path, f"{where}.path", DATASET_SUFFIXES)}


def _run_dir(value: str, where: str) -> Path:
    """The run directory, absolute with `~` expanded; refused when it or a parent is not a directory."""
    path = Path(value).expanduser().absolute()
    for parent in (path, *path.parents):
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise RecipeError(f"{where}: {parent} is not a directory")
            break
    return path


def check_inputs(recipe: Recipe) -> None:
    """Check that the student and every local dataset exist and parse; raise `RecipeError`."""
    src = recipe.source
    student = recipe.student
    if Path(student).is_absolute():
        problem = model_problem(Path(student))
        if problem:
            raise RecipeError(f"{src}: base_model: {student} {problem}")
    adapter_dir = recipe.axolotl.get("lora_model_dir")
    if adapter_dir and Path(adapter_dir).is_absolute() and not (Path(adapter_dir) / "adapter_config.json").is_file():
        what = "holds no adapter (adapter_config.json)" if Path(adapter_dir).is_dir() else "does not exist"
        raise RecipeError(f"{src}: lora_model_dir: {adapter_dir} {what}")
    for i, teacher in enumerate(recipe.mot.teachers):
        for j, entry in enumerate(teacher.datasets):
            key = f"mot.teachers.{i}.datasets.{j}.path"
            path = entry.get("path")
            if not path:
                raise RecipeError(f"{src}: {key}: required (teacher {teacher.name!r})")
            if Path(path).is_absolute():
                _check_dataset_file(Path(path), entry, f"{src}: {key}")
    if recipe.mot.eval:
        from mot_plugin.grading import EvalError, load_eval_file

        files = {"data": recipe.mot.eval.data, "validation": recipe.validation}
        for key, path in files.items():
            try:
                if path:
                    load_eval_file(path)
            except EvalError as err:
                raise RecipeError(f"{src}: mot.eval.{key}: {err}") from None
        if recipe.validation:
            test = {row["prompt"]: number for number, row in read_jsonl(Path(files["data"]), RecipeError)}
            for number, row in read_jsonl(Path(recipe.validation), RecipeError):
                if row["prompt"] in test:
                    raise RecipeError(f"{src}: mot.eval.validation: {recipe.validation}:{number} has the prompt of "
                                      f"{files['data']}:{test[row['prompt']]} (mot.eval.data); validation and test "
                                      f"must not share problems")


def _has_weights(model_dir: Path) -> bool:
    return any(model_dir.glob("*.safetensors")) or any(model_dir.glob("*.bin"))


def model_problem(model_dir: Path, adapters: bool = False) -> str | None:
    """What keeps `model_dir` from being a model (or, with `adapters`, a LoRA adapter); None if nothing."""
    if not model_dir.exists():
        return "does not exist"
    if not model_dir.is_dir():
        return "is not a directory"
    if adapters and (model_dir / "adapter_config.json").is_file():
        return None
    if not (model_dir / "config.json").is_file() or not _has_weights(model_dir):
        return "holds no model (config.json and weights)"
    return None


def _check_dataset_file(path: Path, entry: dict[str, Any], where: str) -> None:
    """An existing dataset file of a kind Axolotl loads; a JSONL file's rows parse, and for
    `type: chat_template` each holds a list of messages with a role and a text content."""
    if not path.exists():
        raise RecipeError(f"{where}: {path} does not exist")
    if path.is_dir():
        return
    if path.suffix not in DATASET_SUFFIXES and "ds_type" not in entry:
        raise RecipeError(f"{where}: {path} is not a dataset file ({', '.join(DATASET_SUFFIXES)}, or set ds_type)")
    if path.suffix != ".jsonl":
        return
    chat = entry.get("type") == "chat_template"
    mapping = entry.get("message_property_mappings") or {}
    field = entry.get("field_messages", "messages")
    keys = (mapping.get("role", entry.get("message_field_role", "role")),
            mapping.get("content", entry.get("message_field_content", "content")))
    rows = 0
    for number, row in read_jsonl(path, RecipeError):
        rows += 1
        messages = row.get(field)
        if chat and not (isinstance(messages, list) and messages and all(
                isinstance(m, dict) and isinstance(m.get(keys[0]), str) and isinstance(m.get(keys[1]), str)
                for m in messages)):
            raise RecipeError(f"{where}: {path}:{number}: not a chat row (needs `{field}`: a list of messages, "
                              f"each with a {keys[0]!r} and a {keys[1]!r} string)")
    if rows == 0:
        raise RecipeError(f"{where}: {path} has no rows")


def dump_yaml(data: Any) -> str:
    """YAML text in the order the data was built (what `mot plan` writes)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)

