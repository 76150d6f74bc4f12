"""The checkpoint bytes each round reads and writes, for `mot plan`: branches load their student and
save their weights, a merge reads its inputs and writes one checkpoint, an evaluation reads one.

Sizes come from the student's safetensors headers (parameter count, no torch) and the dtypes the
recipe sets: a branch saves in the dtype it trains in (`Recipe.train_dtype`, else the student's
own), a merge in its `out_dtype`. Adapter branches save adapters (`mot_plugin.adapters`), and their
merge reads the student and each adapter, and writes and reads one merged copy of the student per
branch (mergekit's LoRA merge cache). Tokenized data and optimizer state are not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from itertools import groupby

from mot_plugin.adapters import DTYPE_BYTES, adapter_bytes, weight_shapes
from mot_plugin.planner import Plan, human_bytes, weights_bytes
from mot_plugin.steps import Step

KINDS = {"branch": ("branches", "read", "write"), "merge": ("merge", "reads", "writes"),
         "eval": ("evaluations", "read", "write")}
"""The kinds of step that move weights, as `mot plan` names them (with their verbs)."""


@dataclass
class KindIO:
    """What the steps of one kind in one round read and write, in bytes."""

    steps: int = 0
    read: int = 0
    written: int = 0


def student_params(student: str) -> tuple[int, int] | None:
    """(parameters, bytes) of a local safetensors checkpoint, from its headers; None otherwise."""
    path = Path(student)
    shapes = weight_shapes(path) if path.is_dir() else {}
    if not shapes:
        return None
    return sum(math.prod(shape) for shape in shapes.values()), weights_bytes(path)


def round_io(plan: Plan, found: tuple[int, int] | None = None) -> dict[int, dict[str, KindIO]] | None:
    """Per round (0: the student's evaluation and the baselines), per kind of step: the bytes read and
    written. None when the student is not a local safetensors checkpoint (a hub id, or missing).
    `found`: the student's `student_params`, when the caller has them."""
    recipe = plan.recipe
    found = found or student_params(recipe.student)
    if found is None:
        return None
    params, student_bytes = found
    branch_bytes = params * DTYPE_BYTES[recipe.train_dtype] if recipe.train_dtype else student_bytes
    sizes = {recipe.student: student_bytes}
    rounds: dict[int, dict[str, KindIO]] = {}
    for step in plan.steps:
        if step.kind == "choose":  # links one of the candidates it reads: no bytes moved
            sizes[str(step.output_dir)] = max(sizes.get(str(Path(c["merged"])), 0) for c in step.config["candidates"])
        if step.kind not in KINDS:
            continue
        read, written = _step_io(step, sizes, recipe.student, params, branch_bytes)
        io = rounds.setdefault(step.round, {}).setdefault(step.kind, KindIO())
        io.steps += 1
        io.read += read
        io.written += written
    return rounds


def _step_io(step: Step, sizes: dict[str, int], student: str, params: int, branch_bytes: int) -> tuple[int, int]:
    """(read, written) bytes of one step; records the size of what it writes in `sizes`."""
    if step.kind == "eval":
        return sizes.get(step.spec.model, 0), 0
    if step.kind == "branch":
        # every round's student has the recipe's student's shapes
        written = (adapter_bytes(Path(student), step.config) or 0) if step.spec.adapter else branch_bytes
        sizes[str(step.output_dir)] = written
        return sizes.get(step.spec.student, 0), written
    config = step.config
    out = params * DTYPE_BYTES.get(config.get("out_dtype"), 4)
    read, written = 0, out
    for model in [m["model"] for m in config["models"]] + ([config["base_model"]] if "base_model" in config else []):
        if "+" in model:  # student+adapter: the student merged with the adapter into a copy, read back
            base, adapter = model.split("+", 1)
            copy = params * DTYPE_BYTES.get(config.get("dtype"), 4)
            read += sizes.get(base, 0) + sizes.get(adapter, 0) + copy
            written += copy
        else:
            read += sizes.get(model, 0)
    sizes[str(step.output_dir)] = out
    return read, written


def describe(plan: Plan) -> list[str]:
    """Lines for `mot plan`: each round's checkpoint reads and writes (identical rounds folded)."""
    found = student_params(plan.recipe.student)
    rounds = round_io(plan, found)
    if rounds is None:
        return ["checkpoint I/O: unknown (the student is not a local safetensors checkpoint)"]
    params, _ = found
    saved = plan.recipe.train_dtype or "the student's dtype"
    lines = [f"checkpoint I/O ({params / 1e6:.1f}M parameters; branches save {saved}, merges their out_dtype):"]

    def line(kinds: dict[str, KindIO]) -> str:
        parts = []
        for kind, io in kinds.items():
            each = f"{io.steps} x " if io.steps > 1 else ""
            name, reads, writes = KINDS[kind]
            text = f"{name} {reads} {each}{human_bytes(io.read / io.steps)}"
            if io.written:
                text += f", {writes} {each}{human_bytes(io.written / io.steps)}"
            parts.append(text)
        read = sum(io.read for io in kinds.values())
        written = sum(io.written for io in kinds.values())
        return f"{'; '.join(parts)}: {human_bytes(read)} read, {human_bytes(written)} written"

    texts = [(r, line(kinds)) for r, kinds in sorted(rounds.items()) if r > 0]
    for text, same in groupby(texts, key=lambda item: item[1]):  # consecutive identical rounds fold
        numbers = [r for r, _ in same]
        label = f"round {numbers[0]}" if len(numbers) == 1 else f"rounds {numbers[0]}-{numbers[-1]}, each"
        lines.append(f"  {label}: {text}")
    if 0 in rounds:
        lines.append(f"  student's evaluation and baselines: {line(rounds[0])}")
    return lines
