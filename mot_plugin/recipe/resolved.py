"""A validated recipe (`Recipe`): the shared Axolotl keys and the `mot:` block, and the run
directories of its seeds."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from mot_plugin.recipe.schema import Merge, MotConfig


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


def dump_yaml(data: Any) -> str:
    """YAML text in the order the data was built (what `mot plan` writes)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
