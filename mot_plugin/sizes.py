"""Byte sizes, for `mot plan`: a local checkpoint's weights and tensor shapes (from safetensors
headers, no torch), an adapter's estimated size, and what each round's steps read and write.

Branches load their student and save their weights in the dtype they train in (`Recipe.train_dtype`,
else the student's own) or an adapter; an evaluation reads one checkpoint; what a merge reads and
writes its executor says (`MergeExecutor.sizes`: a `MergeSizes`). Tokenized data and optimizer state
are not counted.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mot_plugin.adapters import PEFT_DEFAULT_R
from mot_plugin.steps import BranchSpec, ChooseSpec, EvalSpec, MergeSpec

if TYPE_CHECKING:
    from mot_plugin.planner import Plan
    from mot_plugin.registry import Registry

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def weight_shapes(model: Path) -> dict[str, list[int]]:
    """Every tensor's shape in a local checkpoint's safetensors files, by name."""
    shapes: dict[str, list[int]] = {}
    for path in sorted(model.glob("*.safetensors")):
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        shapes.update({name: meta["shape"] for name, meta in header.items() if name != "__metadata__"})
    return shapes


def _targeted(module: str, config: dict[str, Any]) -> bool:
    """Whether PEFT would put a LoRA on `module` (PEFT's rules: a list matches a name or its last
    dotted parts, a string is a regex over the whole name; `lora_target_linear`: every linear layer)."""
    targets = config.get("lora_target_modules")
    if isinstance(targets, str):
        return re.fullmatch(targets, module) is not None
    if any(module == t or module.endswith(f".{t}") for t in targets or []):
        return True
    return bool(config.get("lora_target_linear")) and not re.search(r"embed|lm_head", module)


def adapter_bytes(model: Path, config: dict[str, Any]) -> int | None:
    """Estimated bytes of one branch's adapter: r x (in + out) float32 parameters per targeted 2-D
    weight of the student, plus full copies of `lora_modules_to_save`. None if `model` is not local."""
    shapes = weight_shapes(model) if model.is_dir() else {}
    if not shapes:
        return None
    r = config.get("lora_r") or PEFT_DEFAULT_R
    saved = config.get("lora_modules_to_save") or []
    params = 0
    for name, shape in shapes.items():
        module = name.removesuffix(".weight")
        if any(f".{m}." in f".{name}" for m in saved):
            params += math.prod(shape)
        elif name.endswith(".weight") and len(shape) == 2 and _targeted(module, config):
            params += r * (shape[0] + shape[1])
    return 4 * params


def merged_copy_bytes(model: Path, dtype: str) -> int | None:
    """Bytes of the student written in `dtype` (a copy of it a merge writes, for example)."""
    shapes = weight_shapes(model) if model.is_dir() else {}
    if not shapes:
        return None
    return DTYPE_BYTES.get(dtype, 4) * sum(math.prod(shape) for shape in shapes.values())


def student_params(student: str) -> tuple[int, int] | None:
    """(parameters, bytes) of a local safetensors checkpoint, from its headers; None otherwise."""
    path = Path(student)
    shapes = weight_shapes(path) if path.is_dir() else {}
    if not shapes:
        return None
    return sum(math.prod(shape) for shape in shapes.values()), weights_bytes(path)


def weights_bytes(model: Path) -> int | None:
    """Bytes of a local checkpoint's weight files; None if `model` is not a local directory."""
    if not model.is_dir():
        return None
    return sum(f.stat().st_size for pattern in ("*.safetensors", "*.bin") for f in model.glob(pattern))


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError


@dataclass
class KindIO:
    """What the steps of one kind in one round read and write, in bytes."""

    steps: int = 0
    read: int = 0
    written: int = 0


class UnknownSizes(Exception):
    """A merge whose executor reports no sizes (`MergeExecutor.sizes`)."""


def round_io(plan: "Plan", found: tuple[int, int] | None = None,
             entries: "Registry | None" = None) -> dict[int, dict[str, KindIO]] | None:
    """Per round (0: the student's evaluation and the baselines), per kind of step that moves weights
    (branch, merge, eval): the bytes read and written. None when the student is not a local
    safetensors checkpoint (a hub id, or missing). `found`: the student's `student_params`, when the
    caller has them; `entries`: the registry (by default, of the recipe's plugins). Raises
    `UnknownSizes` for a merge whose executor reports no sizes."""
    recipe = plan.recipe
    found = found or student_params(recipe.student)
    if found is None:
        return None
    if entries is None:
        from mot_plugin.plugins import plugin_manager
        from mot_plugin.registry import collect

        entries = collect(plugin_manager(recipe.mot.plugins).hook)
    params, student_bytes = found
    branch_bytes = params * DTYPE_BYTES[recipe.train_dtype] if recipe.train_dtype else student_bytes
    sizes = {recipe.student: student_bytes}
    rounds: dict[int, dict[str, KindIO]] = {}
    for step in plan.steps:
        spec = step.spec
        if isinstance(spec, ChooseSpec):  # links one of the candidates it reads: no bytes moved
            sizes[str(step.output_dir)] = max(sizes.get(str(Path(c["merged"])), 0) for c in step.config["candidates"])
            continue
        if isinstance(spec, EvalSpec):
            read, written = sizes.get(spec.model, 0), 0
        elif isinstance(spec, BranchSpec):
            # every round's student has the recipe's student's shapes
            written = (adapter_bytes(Path(recipe.student), step.config) or 0) if spec.adapter else branch_bytes
            read = sizes.get(spec.student, 0)
            sizes[str(step.output_dir)] = written
        elif isinstance(spec, MergeSpec):
            read, written, sizes[str(step.output_dir)] = _merge_io(plan, spec, entries, sizes, params)
        else:
            continue
        io = rounds.setdefault(step.round, {}).setdefault(step.kind, KindIO())
        io.steps += 1
        io.read += read
        io.written += written
    return rounds


def _merge_io(plan: "Plan", spec: MergeSpec, entries: "Registry", sizes: dict[str, int],
              params: int) -> tuple[int, int, int]:
    """(read, written, merged) bytes of one merge, as its executor reports what it reads and writes."""
    recipe = plan.recipe.with_merge(spec.candidate)
    executor, settings = entries.merge_executor(recipe)
    if executor.sizes is None:
        raise UnknownSizes(f"merge executor {executor.name} reports no sizes")
    io = executor.sizes(recipe, spec, settings)
    out = params * DTYPE_BYTES.get(io.out_dtype, 4)
    copy = params * DTYPE_BYTES.get(io.copy_dtype or "", 4)
    return sum(sizes.get(path, 0) for path in io.inputs) + io.copies * copy, out + io.copies * copy, out


def disk(plan: "Plan", entries: "Registry") -> str:
    """The peak disk the run needs, and how it was estimated (`mot plan`'s `disk:` line)."""
    recipe = plan.recipe
    student = Path(recipe.student)
    size = weights_bytes(student)
    if not size:
        return "unknown (the student is not a local directory)"
    keep = "kept" if recipe.mot.keep_branches else "deleted after their merge"
    if not recipe.adapter:
        return (f"at most {human_bytes(plan.disk_estimate(size))} of weights at once (checkpoints of "
                f"{human_bytes(size)}; branch weights {keep}), plus tokenized data")
    branches = [s for s in plan.steps if isinstance(s.spec, BranchSpec)]
    adapter = max(adapter_bytes(student, s.config) or 0 for s in branches)
    merge = next(s.spec for s in plan.steps if isinstance(s.spec, MergeSpec))
    executor, settings = entries.merge_executor(recipe.with_merge(merge.candidate))
    io = executor.sizes(recipe.with_merge(merge.candidate), merge, settings) if executor.sizes else None
    if io is None or not io.copies:
        peak = plan.disk_estimate(size, adapter_bytes=adapter)
        held = ""
    else:
        copy = merged_copy_bytes(student, io.copy_dtype or "") or size
        peak = plan.disk_estimate(size, adapter_bytes=adapter, merge_copy_bytes=copy)
        held = f"each merge briefly holds one {human_bytes(copy)} copy of the student per branch, {io.copies_are}; "
    return (f"at most {human_bytes(peak)} of weights at once (students of {human_bytes(size)}; adapters of about "
            f"{human_bytes(adapter)} each, estimated as lora_r x (in + out) float32 weights per targeted layer; "
            f"{held}adapters {keep}), plus tokenized data")
