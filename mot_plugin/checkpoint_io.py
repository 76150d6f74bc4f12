"""The checkpoint bytes each round reads and writes, in the lines `mot plan` prints (the sizes:
`mot_plugin.sizes`)."""

from __future__ import annotations

from itertools import groupby
from typing import TYPE_CHECKING

from mot_plugin.sizes import KindIO, UnknownSizes, human_bytes, round_io, student_params

if TYPE_CHECKING:
    from mot_plugin.planner import Plan
    from mot_plugin.registry import Registry

KINDS = {"branch": ("branches", "read", "write"), "merge": ("merge", "reads", "writes"),
         "eval": ("evaluations", "read", "write")}
"""The kinds of step that move weights, as `mot plan` names them (with their verbs)."""


def describe(plan: "Plan", entries: "Registry | None" = None) -> list[str]:
    """Lines for `mot plan`: each round's checkpoint reads and writes (identical rounds folded)."""
    found = student_params(plan.recipe.student)
    try:
        rounds = round_io(plan, found, entries)
    except UnknownSizes as err:
        return [f"checkpoint I/O: unknown ({err})"]
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
